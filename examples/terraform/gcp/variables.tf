variable "project" {
  description = "The Google Cloud project"
  type        = string
}

variable "region" {
  type    = string
  default = "europe-west1"
}

variable "zone" {
  description = "Both VMs' zone (an alias IP range can move between zones of the region: set zones in the cloud block then)"
  type        = string
  default     = "europe-west1-b"
}

variable "mode" {
  description = "alias_ip (the VIP is an alias IP range from the subnet) or route (a /32 route to the master, the VIP outside the VPC)"
  type        = string
  default     = "alias_ip"
  validation {
    condition     = contains(["alias_ip", "route"], var.mode)
    error_message = "mode must be alias_ip or route."
  }
}

variable "group" {
  description = "Value of the cloudvip-group label and the network tag of the pair"
  type        = string
  default     = "web"
}

variable "subnet" {
  type    = string
  default = "10.10.0.0/24"
}

variable "route_vip" {
  description = "route mode: the VIP, outside every subnet of the VPC"
  type        = string
  default     = "192.168.254.10"
}

variable "machine_type" {
  type    = string
  default = "e2-small"
}

variable "image" {
  type    = string
  default = "debian-cloud/debian-12"
}

variable "app_ports" {
  description = "TCP ports clients reach on the VIP"
  type        = list(number)
  default     = [80, 443]
}

variable "client_cidrs" {
  description = "Who may reach the application"
  type        = list(string)
  default     = ["10.0.0.0/8"]
}

variable "cloudvip_package" {
  description = "What pip installs on the VMs when cloudvip_deb_url is empty"
  type        = string
  default     = "cloudvip[gcp] @ git+https://github.com/cloudvip/cloudvip"
}

variable "cloudvip_deb_url" {
  description = "URL of cloudvip's Debian package (make dist), in a bucket or on a web server you control; \"\" to pip-install cloudvip_package instead"
  type        = string
}

variable "cloudvip_deb_sha256" {
  description = "SHA-256 of that package, checked on the VM before it is installed (\"\": not checked)"
  type        = string
  default     = ""
}
