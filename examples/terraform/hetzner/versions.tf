terraform {
  required_version = ">= 1.5"
  required_providers {
    hcloud = {
      source  = "hetznercloud/hcloud"
      version = ">= 1.45"
    }
  }
}

# the token Terraform uses (HCLOUD_TOKEN works too); the agents get their own, agent_token
provider "hcloud" {
  token = var.hcloud_token
}
