"""cloudvip's provider backends, each registered in the entry-point group `cloudvip.providers`."""
