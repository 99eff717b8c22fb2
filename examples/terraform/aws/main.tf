# Two instances in one subnet share a VIP that cloudvip moves to whichever is VRRP master:
# a secondary private IP (AssignPrivateIpAddresses with AllowReassignment) or an Elastic IP
# (AssociateAddress with AllowReassociation). Terraform creates the pair and reserves the
# address; cloudvip owns the assignment (Terraform never assigns the VIP, so it never fights
# cloudvip over it).

data "aws_caller_identity" "current" {}

data "aws_subnet" "pair" {
  id = var.subnet_id
}

data "aws_ami" "debian" {
  most_recent = true
  owners      = ["136693071363"] # Debian
  filter {
    name   = "name"
    values = ["debian-12-amd64-*"]
  }
}

locals {
  vip        = cidrhost(data.aws_subnet.pair.cidr_block, var.vip_host_number)
  vip_prefix = split("/", data.aws_subnet.pair.cidr_block)[1]
  group_tag  = { "cloudvip:group" = var.group }
  nodes = {
    a = { priority = 100 }
    b = { priority = 90 }
  }
  account = data.aws_caller_identity.current.account_id
}

# secondary_ip: AWS must never give the VIP to another ENI of the subnet on its own
resource "aws_ec2_subnet_cidr_reservation" "vip" {
  count            = var.mode == "secondary_ip" ? 1 : 0
  subnet_id        = var.subnet_id
  cidr_block       = "${local.vip}/32"
  reservation_type = "explicit"
  description      = "cloudvip VIP of group ${var.group}"
}

# elastic_ip: the public address cloudvip associates with the master (left unassociated here)
resource "aws_eip" "vip" {
  count  = var.mode == "elastic_ip" ? 1 : 0
  domain = "vpc"
  tags   = merge(local.group_tag, { Name = "cloudvip-${var.group}" })
}

resource "aws_security_group" "pair" {
  name        = "cloudvip-${var.group}"
  description = "cloudvip pair ${var.group}: VRRP between the pair only, the app from its clients"
  vpc_id      = data.aws_subnet.pair.vpc_id
  tags        = local.group_tag
}

# VRRP (IP protocol 112) only between members of this security group
resource "aws_vpc_security_group_ingress_rule" "vrrp" {
  security_group_id            = aws_security_group.pair.id
  description                  = "VRRP adverts from the peer"
  ip_protocol                  = "112"
  referenced_security_group_id = aws_security_group.pair.id
}

resource "aws_vpc_security_group_egress_rule" "vrrp" {
  security_group_id            = aws_security_group.pair.id
  description                  = "VRRP adverts to the peer"
  ip_protocol                  = "112"
  referenced_security_group_id = aws_security_group.pair.id
}

resource "aws_vpc_security_group_ingress_rule" "app" {
  for_each          = { for pair in setproduct(var.app_ports, var.client_cidrs) : "${pair[0]}-${pair[1]}" => pair }
  security_group_id = aws_security_group.pair.id
  description       = "application traffic to the VIP"
  ip_protocol       = "tcp"
  from_port         = each.value[0]
  to_port           = each.value[0]
  cidr_ipv4         = each.value[1]
}

# the EC2 API and package mirrors (HTTPS); use a VPC endpoint for EC2 to keep it private
resource "aws_vpc_security_group_egress_rule" "https" {
  security_group_id = aws_security_group.pair.id
  description       = "EC2 API, package installation"
  ip_protocol       = "tcp"
  from_port         = 443
  to_port           = 443
  cidr_ipv4         = "0.0.0.0/0"
}

resource "aws_vpc_security_group_egress_rule" "http" {
  security_group_id = aws_security_group.pair.id
  description       = "Debian package mirrors"
  ip_protocol       = "tcp"
  from_port         = 80
  to_port           = 80
  cidr_ipv4         = "0.0.0.0/0"
}

resource "aws_instance" "node" {
  for_each               = local.nodes
  ami                    = var.ami_id != "" ? var.ami_id : data.aws_ami.debian.id
  instance_type          = var.instance_type
  subnet_id              = var.subnet_id
  vpc_security_group_ids = [aws_security_group.pair.id]
  iam_instance_profile   = aws_iam_instance_profile.cloudvip.name
  key_name               = var.key_name
  monitoring             = true
  ebs_optimized          = true

  # IMDSv2 only: cloudvip discovers its instance, region and ENI through the token flow
  metadata_options {
    http_endpoint               = "enabled"
    http_tokens                 = "required"
    http_put_response_hop_limit = 1
  }

  root_block_device {
    encrypted = true
  }

  user_data = templatefile("${path.module}/../shared/install-cloudvip.sh.tftpl", {
    install_package = module.cloudvip_package.install_script
    keepalived_conf = templatefile("${path.module}/keepalived.conf.tftpl", {
      router_id     = "cloudvip-${var.group}-${each.key}"
      interface     = var.interface
      priority      = each.value.priority
      vrid          = 51
      mode          = var.mode
      vip           = var.mode == "secondary_ip" ? "${local.vip}/${local.vip_prefix}" : ""
      allocation_id = var.mode == "elastic_ip" ? aws_eip.vip[0].allocation_id : ""
      group         = var.group
    })
  })
  user_data_replace_on_change = true

  tags = merge(local.group_tag, { Name = "cloudvip-${var.group}-${each.key}" })
}

module "cloudvip_package" {
  source      = "../shared/package"
  deb_url     = var.cloudvip_deb_url
  deb_sha256  = var.cloudvip_deb_sha256
  pip_package = var.cloudvip_package
}
