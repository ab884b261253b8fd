"""Fake ``modules`` package of an Automatic1111/Forge WebUI (see ../README.md)."""
