"""Records that prove themselves: the chain, its key and the audit trail."""
