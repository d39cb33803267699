"""Pydantic request and response bodies, one module per area.

The same models validate requests and generate `/api/openapi.json`.
"""
