"""Local emulators of providers' file APIs, for tests and offline work."""
