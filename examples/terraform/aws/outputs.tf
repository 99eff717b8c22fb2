output "vip" {
  description = "The address clients use"
  value       = var.mode == "secondary_ip" ? local.vip : aws_eip.vip[0].public_ip
}

output "instances" {
  value = { for k, n in aws_instance.node : k => { id = n.id, private_ip = n.private_ip, eni = n.primary_network_interface_id } }
}

output "security_group_id" {
  value = aws_security_group.pair.id
}
