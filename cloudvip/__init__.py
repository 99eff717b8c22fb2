"""cloudvip: a cloud-aware VRRP failover agent, wire-compatible with keepalived."""

__version__ = "0.1.0"
