"""DTBase core: the data layer, queries, schemas and security, with no Azure in sight."""
