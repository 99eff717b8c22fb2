output "vip" {
  description = "The address clients use"
  value       = var.mode == "floating_ip" ? hcloud_floating_ip.vip[0].ip_address : local.alias_vip
}

output "servers" {
  value = { for k, s in hcloud_server.node : k => { id = s.id, public_ip = s.ipv4_address, private_ip = local.nodes[k].ip } }
}
