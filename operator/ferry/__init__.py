"""Ferry: run research-computing Jobs of registered Apps on Kubernetes."""

__version__ = "0.1.0"
