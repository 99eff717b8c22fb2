# The package step of every example's start-up script: the Debian package from a URL you control
# (make dist; a release artifact in a bucket or on a web server), or pip as the alternative.

variable "deb_url" {
  description = "URL of cloudvip's .deb; empty: pip installs pip_package instead"
  type        = string
}

variable "deb_sha256" {
  description = "SHA-256 of the .deb, checked before it is installed (empty: not checked)"
  type        = string
  default     = ""
  validation {
    condition     = can(regex("^([0-9a-f]{64})?$", var.deb_sha256))
    error_message = "deb_sha256 is 64 lowercase hex digits, or empty."
  }
}

variable "pip_package" {
  description = "What pip installs when deb_url is empty"
  type        = string
}

output "install_script" {
  description = "Shell lines that install cloudvip (idempotent)"
  value = templatefile("${path.module}/install-package.sh.tftpl", {
    cloudvip_deb_url    = var.deb_url
    cloudvip_deb_sha256 = var.deb_sha256
    cloudvip_package    = var.pip_package
    systemd_unit        = file("${path.module}/../../../../systemd/cloudvip.service")
  })
}
