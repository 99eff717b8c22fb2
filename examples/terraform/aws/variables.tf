variable "region" {
  description = "AWS region of the pair"
  type        = string
  default     = "eu-central-1"
}

variable "subnet_id" {
  description = "The subnet both instances live in (secondary_ip works within one subnet, hence one AZ)"
  type        = string
}

variable "mode" {
  description = "How cloudvip moves the VIP: secondary_ip (a private IP of the subnet) or elastic_ip (a public IP)"
  type        = string
  default     = "secondary_ip"
  validation {
    condition     = contains(["secondary_ip", "elastic_ip"], var.mode)
    error_message = "mode must be secondary_ip or elastic_ip."
  }
}

variable "vip_host_number" {
  description = "secondary_ip: the VIP is this host number of the subnet (cidrhost), reserved so AWS never hands it out"
  type        = number
  default     = 250
}

variable "group" {
  description = "Value of the cloudvip:group tag: the pair finds its peers by it, and IAM is scoped to it"
  type        = string
  default     = "web"
}

variable "instance_type" {
  type    = string
  default = "t3.micro"
}

variable "ami_id" {
  description = "AMI to use; empty: the latest Debian 12 (bookworm) amd64 from Debian's account"
  type        = string
  default     = ""
}

variable "interface" {
  description = "The instances' primary network interface as the OS names it (ens5 on Nitro with Debian 12)"
  type        = string
  default     = "ens5"
}

variable "cloudvip_package" {
  description = "pip requirement for cloudvip with the aws extra (a release, or a git URL)"
  type        = string
  default     = "cloudvip[aws]"
}

variable "app_ports" {
  description = "TCP ports the clients reach on the VIP (e.g. HAProxy)"
  type        = list(number)
  default     = [80, 443]
}

variable "client_cidrs" {
  description = "Who may reach app_ports"
  type        = list(string)
  default     = ["10.0.0.0/8"]
}

variable "key_name" {
  description = "EC2 key pair for SSH (null: none; use SSM Session Manager)"
  type        = string
  default     = null
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
