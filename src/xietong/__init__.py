"""xietong (协同): cross-department government collaboration platform."""

__version__ = "0.1.0"
