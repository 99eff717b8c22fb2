"""Throw-away network labs: namespaces, veth and a bridge, for `cloudvip lab`, the tests and bench/."""
