# Least privilege for cloudvip on the pair: the one write its mode needs, on exactly the pair's
# ENIs (and the Elastic IP), plus the Describe calls it uses to check before and verify after
# each move and to find its peers by tag. EC2 Describe* actions support no resource-level
# permissions, so they take "*" (restricted to the region). No Unassign/Disassociate: a backup
# never removes the VIP from anyone. `cloudvip doctor` (run by the user data) reads the security
# groups and subnets too, and checks AssignPrivateIpAddresses (which has no DryRun) by simulating
# this role's own policy: all read-only.

data "aws_iam_policy_document" "assume" {
  statement {
    actions = ["sts:AssumeRole"]
    principals {
      type        = "Service"
      identifiers = ["ec2.amazonaws.com"]
    }
  }
}

resource "aws_iam_role" "cloudvip" {
  name               = "cloudvip-${var.group}"
  assume_role_policy = data.aws_iam_policy_document.assume.json
  tags               = local.group_tag
}

resource "aws_iam_instance_profile" "cloudvip" {
  name = "cloudvip-${var.group}"
  role = aws_iam_role.cloudvip.name
}

locals {
  eni_arns = [for n in aws_instance.node :
    "arn:aws:ec2:${var.region}:${local.account}:network-interface/${n.primary_network_interface_id}"]
  instance_arns = [for n in aws_instance.node : n.arn]
}

data "aws_iam_policy_document" "cloudvip" {
  statement {
    sid = "ReadWhoHoldsTheVipAndFindPeers"
    actions = concat(
      ["ec2:DescribeNetworkInterfaces", "ec2:DescribeInstances", "ec2:DescribeSecurityGroups", "ec2:DescribeSubnets"],
      var.mode == "elastic_ip" ? ["ec2:DescribeAddresses"] : [],
    )
    resources = ["*"]
    condition {
      test     = "StringEquals"
      variable = "aws:RequestedRegion"
      values   = [var.region]
    }
  }

  statement {
    sid       = "LetCloudvipDoctorSimulateThisRolesOwnPolicy"
    actions   = ["iam:SimulatePrincipalPolicy"]
    resources = [aws_iam_role.cloudvip.arn]
  }

  dynamic "statement" {
    for_each = var.mode == "secondary_ip" ? [1] : []
    content {
      sid       = "MoveTheSecondaryIpBetweenThePair"
      actions   = ["ec2:AssignPrivateIpAddresses"]
      resources = local.eni_arns
    }
  }

  dynamic "statement" {
    for_each = var.mode == "elastic_ip" ? [1] : []
    content {
      sid     = "MoveTheElasticIpBetweenThePair"
      actions = ["ec2:AssociateAddress"]
      resources = concat(
        ["arn:aws:ec2:${var.region}:${local.account}:elastic-ip/${aws_eip.vip[0].allocation_id}"],
        local.eni_arns,
        local.instance_arns,
      )
    }
  }
}

# attached after the instances exist (the ENI ARNs are theirs); until IAM has propagated, a
# master's first move may be denied: cloudvip tries it again at each reconciliation
resource "aws_iam_role_policy" "cloudvip" {
  name   = "cloudvip-move-vip"
  role   = aws_iam_role.cloudvip.id
  policy = data.aws_iam_policy_document.cloudvip.json
}
