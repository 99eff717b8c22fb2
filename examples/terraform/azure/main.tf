# Two VMs in one subnet share a VIP that cloudvip moves to whichever is VRRP master: a /32
# user-defined route with the master's address as next hop (the default: a route moves in about
# 10 s), or a secondary IP configuration removed from the old master's NIC and added to the new
# one's (30-90 s). VRRP runs unicast between the pair. Terraform never writes the route or the
# secondary configuration, so `terraform apply` never fights cloudvip over them. Each VM's
# system-assigned managed identity holds one custom role with exactly the actions its mode calls,
# on this resource group only.

locals {
  name = "cloudvip-${var.group}"
  nodes = {
    a = { priority = 100, ip = cidrhost(var.subnet, 11) }
    b = { priority = 90, ip = cidrhost(var.subnet, 12) }
  }
  vip = var.mode == "ip_config" ? cidrhost(var.subnet, 100) : var.route_vip
  actions = {
    route_table = [
      "Microsoft.Network/routeTables/read", "Microsoft.Network/routeTables/routes/read",
      "Microsoft.Network/routeTables/routes/write", "Microsoft.Network/networkInterfaces/read",
      "Microsoft.Network/locations/operations/read", "Microsoft.Compute/virtualMachines/read",
    ]
    ip_config = [
      "Microsoft.Network/networkInterfaces/read", "Microsoft.Network/networkInterfaces/write",
      "Microsoft.Network/virtualNetworks/subnets/join/action", "Microsoft.Network/locations/operations/read",
      "Microsoft.Compute/virtualMachines/read",
    ]
  }
}

resource "azurerm_resource_group" "pair" {
  name     = local.name
  location = var.location
}

resource "azurerm_virtual_network" "pair" {
  name                = local.name
  location            = azurerm_resource_group.pair.location
  resource_group_name = azurerm_resource_group.pair.name
  address_space       = [var.vnet]
}

resource "azurerm_subnet" "pair" {
  name                 = "pair"
  resource_group_name  = azurerm_resource_group.pair.name
  virtual_network_name = azurerm_virtual_network.pair.name
  address_prefixes     = [var.subnet]
}

# An NSG names no IP protocol but Tcp, Udp, Icmp, Esp and Ah ("*" for the rest): VRRP (112) is
# allowed as "*" between the pair's two addresses only, and the rest of the VNet is denied
# above Azure's default AllowVnetInBound.
resource "azurerm_network_security_group" "pair" {
  name                = local.name
  location            = azurerm_resource_group.pair.location
  resource_group_name = azurerm_resource_group.pair.name

  security_rule {
    name                       = "vrrp-between-the-pair"
    priority                   = 100
    direction                  = "Inbound"
    access                     = "Allow"
    protocol                   = "*"
    source_port_range          = "*"
    destination_port_range     = "*"
    source_address_prefixes    = [for n in local.nodes : n.ip]
    destination_address_prefixes = [for n in local.nodes : n.ip]
  }

  security_rule {
    name                       = "app-from-clients"
    priority                   = 110
    direction                  = "Inbound"
    access                     = "Allow"
    protocol                   = "Tcp"
    source_port_range          = "*"
    destination_port_ranges    = [for p in var.app_ports : tostring(p)]
    source_address_prefixes    = var.client_cidrs
    destination_address_prefix = "*"
  }

  security_rule {
    name                       = "no-other-vnet-traffic"
    priority                   = 4000
    direction                  = "Inbound"
    access                     = "Deny"
    protocol                   = "*"
    source_port_range          = "*"
    destination_port_range     = "*"
    source_address_prefix      = "VirtualNetwork"
    destination_address_prefix = "*"
  }
}

resource "azurerm_subnet_network_security_group_association" "pair" {
  subnet_id                 = azurerm_subnet.pair.id
  network_security_group_id = azurerm_network_security_group.pair.id
}

# route_table mode: cloudvip writes the VIP's route here (associate the table with the subnets
# of the VIP's clients; this one is associated with the pair's own subnet). Its routes are
# cloudvip's: Terraform declares none and ignores them.
resource "azurerm_route_table" "vip" {
  name                = local.name
  location            = azurerm_resource_group.pair.location
  resource_group_name = azurerm_resource_group.pair.name

  lifecycle {
    ignore_changes = [route]
  }
}

resource "azurerm_subnet_route_table_association" "pair" {
  subnet_id      = azurerm_subnet.pair.id
  route_table_id = azurerm_route_table.vip.id
}

resource "azurerm_network_interface" "node" {
  for_each            = local.nodes
  name                = "${local.name}-${each.key}"
  location            = azurerm_resource_group.pair.location
  resource_group_name = azurerm_resource_group.pair.name
  # route_table mode: the master receives packets for the VIP, an address its NIC does not have
  ip_forwarding_enabled = var.mode == "route_table" #checkov:skip=CKV_AZURE_118:route_table mode needs IP forwarding (packets to the VIP)

  ip_configuration {
    name                          = "ipconfig1"
    subnet_id                     = azurerm_subnet.pair.id
    private_ip_address_allocation = "Static"
    private_ip_address            = each.value.ip
    primary                       = true
  }

  lifecycle {
    ignore_changes = [ip_configuration] # ip_config mode: cloudvip adds and removes the VIP's
  }
}

resource "azurerm_linux_virtual_machine" "node" {
  for_each                        = local.nodes
  name                            = "${local.name}-${each.key}"
  location                        = azurerm_resource_group.pair.location
  resource_group_name             = azurerm_resource_group.pair.name
  size                            = var.vm_size
  admin_username                  = "cloudvip"
  disable_password_authentication = true
  allow_extension_operations      = false
  network_interface_ids           = [azurerm_network_interface.node[each.key].id]
  tags                            = { "cloudvip-group" = var.group }

  admin_ssh_key {
    username   = "cloudvip"
    public_key = var.admin_ssh_public_key
  }

  identity {
    type = "SystemAssigned"
  }

  os_disk {
    caching              = "ReadWrite"
    storage_account_type = "Standard_LRS"
  }

  source_image_reference {
    publisher = "Debian"
    offer     = "debian-12"
    sku       = "12-gen2"
    version   = "latest"
  }

  custom_data = base64encode(templatefile("${path.module}/../shared/install-cloudvip.sh.tftpl", {
    install_package = module.cloudvip_package.install_script
    keepalived_conf = templatefile("${path.module}/keepalived.conf.tftpl", {
      router_id   = "${local.name}-${each.key}"
      group       = var.group
      mode        = var.mode
      priority    = each.value.priority
      self_ip     = each.value.ip
      peer_ip     = [for k, n in local.nodes : n.ip if k != each.key][0]
      vip         = local.vip
      prefix      = var.mode == "ip_config" ? split("/", var.subnet)[1] : "32"
      route_table = var.mode == "route_table" ? azurerm_route_table.vip.name : ""
    })
  }))
}

resource "azurerm_role_definition" "cloudvip" {
  name        = "${local.name}-${var.mode}"
  scope       = azurerm_resource_group.pair.id
  description = "What cloudvip's ${var.mode} mode calls, nothing else"
  permissions {
    actions = local.actions[var.mode]
  }
  assignable_scopes = [azurerm_resource_group.pair.id]
}

resource "azurerm_role_assignment" "node" {
  for_each           = local.nodes
  scope              = azurerm_resource_group.pair.id
  role_definition_id = azurerm_role_definition.cloudvip.role_definition_resource_id
  principal_id       = azurerm_linux_virtual_machine.node[each.key].identity[0].principal_id
}

module "cloudvip_package" {
  source      = "../shared/package"
  deb_url     = var.cloudvip_deb_url
  deb_sha256  = var.cloudvip_deb_sha256
  pip_package = var.cloudvip_package
}
