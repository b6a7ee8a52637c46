"""The centre side: ClientApp, data ingestion, site policy, privacy ledger, local scoring."""
