"""HTTP side of nudgestream (aiohttp): ingestion endpoint (``ingest``) and API-key auth (``auth``).

Kept free of imports so ``import streams.web.auth`` stays light; build apps with
:func:`streams.web.ingest.create_ingest_app` or add routes to an existing app with
:func:`streams.web.ingest.add_ingest_routes`.
"""
