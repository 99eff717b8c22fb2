"""`cloudvip doctor`: pre-flight checks for the classic cloud-failover mistakes, each finding
with its fix, changing nothing anywhere."""
