"""The errors funclinop raises."""

__all__ = ["ShapeError", "DeviceError"]


class ShapeError(ValueError):
    """A named dimension or its size does not match what an operator expects."""


class DeviceError(RuntimeError):
    """A tensor or leaf is on a different device than the operation needs."""
