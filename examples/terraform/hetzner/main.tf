# Two servers on a private network share a VIP that cloudvip moves to whichever is VRRP master:
# a floating IP (assign action) or an alias IP on the network (change_alias_ips). VRRP runs
# unicast over the private network, which holds only this pair. Terraform creates the VIP but
# never assigns it (ignore_changes), so `terraform apply` never fights cloudvip over it.

locals {
  labels = { "cloudvip-group" = var.group }
  nodes = {
    a = { priority = 100, ip = cidrhost(var.subnet, 11) }
    b = { priority = 90, ip = cidrhost(var.subnet, 12) }
  }
  alias_vip = cidrhost(var.subnet, 100)
}

resource "hcloud_network" "pair" {
  name     = "cloudvip-${var.group}"
  ip_range = var.ip_range
  labels   = local.labels
}

resource "hcloud_network_subnet" "pair" {
  network_id   = hcloud_network.pair.id
  type         = "cloud"
  network_zone = var.network_zone
  ip_range     = var.subnet
}

resource "hcloud_floating_ip" "vip" {
  count         = var.mode == "floating_ip" ? 1 : 0
  type          = "ipv4"
  home_location = var.location
  name          = "cloudvip-${var.group}"
  labels        = local.labels
  lifecycle {
    ignore_changes = [server_id] # cloudvip assigns it to the master
  }
}

# Hetzner Cloud firewalls filter the public interface only (and know tcp, udp, icmp, esp, gre):
# inbound, only the app and ICMP pass; VRRP (protocol 112) from the internet is dropped, and
# the pair's adverts travel on the private network, which has no other member.
resource "hcloud_firewall" "pair" {
  name   = "cloudvip-${var.group}"
  labels = local.labels

  dynamic "rule" {
    for_each = var.app_ports
    content {
      direction   = "in"
      protocol    = "tcp"
      port        = rule.value
      source_ips  = var.client_cidrs
      description = "application on the VIP"
    }
  }

  rule {
    direction   = "in"
    protocol    = "icmp"
    source_ips  = var.client_cidrs
    description = "ping, path MTU discovery"
  }
}

resource "hcloud_server" "node" {
  for_each     = local.nodes
  name         = "cloudvip-${var.group}-${each.key}"
  image        = var.image
  server_type  = var.server_type
  location     = var.location
  ssh_keys     = var.ssh_keys
  firewall_ids = [hcloud_firewall.pair.id]
  labels       = local.labels

  public_net {
    ipv4_enabled = true
    ipv6_enabled = true
  }

  user_data = templatefile("${path.module}/cloud-init.yaml.tftpl", {
    install_package = module.cloudvip_package.install_script
    agent_token     = var.agent_token
    keepalived_conf = templatefile("${path.module}/keepalived.conf.tftpl", {
      router_id         = "cloudvip-${var.group}-${each.key}"
      private_interface = var.private_interface
      priority          = each.value.priority
      self_ip           = each.value.ip
      peer_ip           = [for k, n in local.nodes : n.ip if k != each.key][0]
      mode              = var.mode
      vip_line          = var.mode == "floating_ip" ? "${hcloud_floating_ip.vip[0].ip_address}/32 dev eth0" : "${local.alias_vip}/32"
      floating_ip_line  = var.mode == "floating_ip" ? "floating_ip ${hcloud_floating_ip.vip[0].id}" : ""
      group             = var.group
    })
  })

  depends_on = [hcloud_network_subnet.pair]
}

# separate attachments, so that the alias IPs cloudvip moves are not Terraform's to reset
resource "hcloud_server_network" "node" {
  for_each   = local.nodes
  server_id  = hcloud_server.node[each.key].id
  network_id = hcloud_network.pair.id
  ip         = each.value.ip
  lifecycle {
    ignore_changes = [alias_ips] # cloudvip moves the alias IP to the master
  }
}

module "cloudvip_package" {
  source      = "../shared/package"
  deb_url     = var.cloudvip_deb_url
  deb_sha256  = var.cloudvip_deb_sha256
  pip_package = var.cloudvip_package
}
