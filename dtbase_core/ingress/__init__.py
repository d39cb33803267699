"""Ingress services: data from outside DTBase brought in as sensor readings."""
