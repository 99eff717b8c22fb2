variable "hcloud_token" {
  description = "API token for Terraform (read/write)"
  type        = string
  sensitive   = true
}

variable "agent_token" {
  description = "API token the agents use to move the VIP (read/write; ideally a project holding only this pair)"
  type        = string
  sensitive   = true
}

variable "mode" {
  description = "floating_ip (a public floating IP) or alias_ip (a private alias IP on the pair's network)"
  type        = string
  default     = "floating_ip"
  validation {
    condition     = contains(["floating_ip", "alias_ip"], var.mode)
    error_message = "mode must be floating_ip or alias_ip."
  }
}

variable "group" {
  description = "Value of the cloudvip-group label on the pair"
  type        = string
  default     = "web"
}

variable "location" {
  type    = string
  default = "fsn1"
}

variable "network_zone" {
  type    = string
  default = "eu-central"
}

variable "server_type" {
  type    = string
  default = "cx22"
}

variable "image" {
  type    = string
  default = "debian-12"
}

variable "ip_range" {
  description = "The pair's private network; VRRP runs over it"
  type        = string
  default     = "10.0.0.0/16"
}

variable "subnet" {
  type    = string
  default = "10.0.1.0/24"
}

variable "private_interface" {
  description = "The private network's interface as the OS names it (enp7s0 on cx22 with Debian 12)"
  type        = string
  default     = "enp7s0"
}

variable "app_ports" {
  description = "TCP ports clients reach on the VIP"
  type        = list(string)
  default     = ["80", "443"]
}

variable "client_cidrs" {
  type    = list(string)
  default = ["0.0.0.0/0", "::/0"]
}

variable "ssh_keys" {
  description = "SSH key names or ids for the servers"
  type        = list(string)
  default     = []
}

variable "cloudvip_package" {
  description = "pip requirement for cloudvip with the hetzner extra (a release, or a git URL)"
  type        = string
  default     = "cloudvip[hetzner]"
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
