output "vip" {
  description = "The address clients use"
  value       = local.vip
}

output "instances" {
  value = { for k, n in google_compute_instance.node : k => { name = n.name, ip = local.nodes[k].ip } }
}
