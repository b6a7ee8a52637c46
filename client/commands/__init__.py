"""Commands of ``perseverance-client``, one module each, registered by ``client.cli``."""
