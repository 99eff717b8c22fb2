output "vip" {
  description = "The address clients use"
  value       = local.vip
}

output "vms" {
  value = { for k, v in azurerm_linux_virtual_machine.node : k => { name = v.name, ip = local.nodes[k].ip } }
}

output "route_table_id" {
  description = "route_table mode: associate it with every subnet whose clients reach the VIP"
  value       = azurerm_route_table.vip.id
}
