variable "subscription_id" {
  type = string
}

variable "location" {
  type    = string
  default = "westeurope"
}

variable "mode" {
  description = "route_table (a /32 user-defined route to the master, the VIP outside the VNet; about 10 s) or ip_config (the VIP as a secondary IP configuration; 30-90 s)"
  type        = string
  default     = "route_table"
  validation {
    condition     = contains(["route_table", "ip_config"], var.mode)
    error_message = "mode must be route_table or ip_config."
  }
}

variable "group" {
  description = "Value of the cloudvip-group tag of the pair's VMs"
  type        = string
  default     = "web"
}

variable "vnet" {
  type    = string
  default = "10.20.0.0/16"
}

variable "subnet" {
  type    = string
  default = "10.20.1.0/24"
}

variable "route_vip" {
  description = "route_table mode: the VIP, outside the VNet's address space"
  type        = string
  default     = "192.168.254.10"
}

variable "vm_size" {
  type    = string
  default = "Standard_B1s"
}

variable "admin_ssh_public_key" {
  description = "The OpenSSH public key of the VMs' admin user (no password logins)"
  type        = string
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
  default     = "cloudvip[azure] @ git+https://github.com/cloudvip/cloudvip"
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
