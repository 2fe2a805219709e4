"""Protocol adapters: one module per protocol, each declaring its Capabilities."""
