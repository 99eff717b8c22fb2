# Two VMs in one subnet share a VIP that cloudvip moves to whichever is VRRP master: an alias IP
# range (removed from the old master's NIC, added to the new one's) or a /32 route with the
# master as next hop. VRRP runs unicast between the pair; the firewall lets protocol 112 in
# only from the pair's own network tag. Terraform never assigns the VIP, so `terraform apply`
# never fights cloudvip over it. The VMs run as a service account holding one custom role with
# exactly the compute permissions the mode uses.

locals {
  tag    = "cloudvip-${var.group}"
  labels = { "cloudvip-group" = var.group }
  nodes = {
    a = { priority = 100, ip = cidrhost(var.subnet, 11) }
    b = { priority = 90, ip = cidrhost(var.subnet, 12) }
  }
  vip = var.mode == "alias_ip" ? cidrhost(var.subnet, 100) : var.route_vip
  permissions = {
    alias_ip = [
      "compute.instances.get", "compute.instances.list", "compute.instances.updateNetworkInterface",
      "compute.zoneOperations.get", "compute.subnetworks.use",
    ]
    route = [
      "compute.instances.get", "compute.instances.list", "compute.instances.use",
      "compute.routes.get", "compute.routes.create", "compute.routes.delete",
      "compute.networks.updatePolicy", "compute.globalOperations.get",
    ]
  }
}

resource "google_compute_network" "pair" {
  name                    = "cloudvip-${var.group}"
  auto_create_subnetworks = false
}

resource "google_compute_subnetwork" "pair" {
  name                     = "cloudvip-${var.group}"
  network                  = google_compute_network.pair.id
  ip_cidr_range            = var.subnet
  region                   = var.region
  private_ip_google_access = true
  log_config {
    aggregation_interval = "INTERVAL_5_MIN"
  }
}

# VRRP (IP protocol 112) between the pair only
resource "google_compute_firewall" "vrrp" {
  name        = "cloudvip-${var.group}-vrrp"
  network     = google_compute_network.pair.id
  direction   = "INGRESS"
  source_tags = [local.tag]
  target_tags = [local.tag]
  allow {
    protocol = "112"
  }
}

resource "google_compute_firewall" "app" {
  name          = "cloudvip-${var.group}-app"
  network       = google_compute_network.pair.id
  direction     = "INGRESS"
  source_ranges = var.client_cidrs
  target_tags   = [local.tag]
  allow {
    protocol = "tcp"
    ports    = [for p in var.app_ports : tostring(p)]
  }
}

resource "google_service_account" "cloudvip" {
  account_id   = "cloudvip-${var.group}"
  display_name = "cloudvip agents of ${var.group}"
}

resource "google_project_iam_custom_role" "cloudvip" {
  role_id     = "cloudvip_${var.group}_${var.mode}"
  title       = "cloudvip ${var.group} (${var.mode})"
  description = "What cloudvip's ${var.mode} mode calls, nothing else"
  permissions = local.permissions[var.mode]
}

resource "google_project_iam_member" "cloudvip" {
  project = var.project
  role    = google_project_iam_custom_role.cloudvip.id
  member  = "serviceAccount:${google_service_account.cloudvip.email}"
}

resource "google_compute_instance" "node" {
  for_each     = local.nodes
  name         = "cloudvip-${var.group}-${each.key}"
  zone         = var.zone
  machine_type = var.machine_type
  tags         = [local.tag]
  labels       = local.labels
  # route mode: the master receives packets for the VIP, an address no NIC has
  can_ip_forward = var.mode == "route" #checkov:skip=CKV_GCP_36:route mode needs IP forwarding (packets to the VIP)

  # checkov:skip=CKV_GCP_38:disks are encrypted at rest with Google-managed keys; customer-supplied keys are the operator's to create and rotate
  boot_disk {
    initialize_params {
      image = var.image
    }
  }

  network_interface {
    subnetwork = google_compute_subnetwork.pair.id
    network_ip = each.value.ip
  }

  service_account {
    email  = google_service_account.cloudvip.email
    scopes = ["https://www.googleapis.com/auth/compute"]
  }

  shielded_instance_config {
    enable_secure_boot          = true
    enable_vtpm                 = true
    enable_integrity_monitoring = true
  }

  metadata = {
    block-project-ssh-keys = true
    enable-oslogin         = true
    startup-script = templatefile("${path.module}/../shared/install-cloudvip.sh.tftpl", {
      install_package = module.cloudvip_package.install_script
      keepalived_conf = templatefile("${path.module}/keepalived.conf.tftpl", {
        router_id = "cloudvip-${var.group}-${each.key}"
        group     = var.group
        mode      = var.mode
        priority  = each.value.priority
        self_ip   = each.value.ip
        peer_ip   = [for k, n in local.nodes : n.ip if k != each.key][0]
        vip       = local.vip
        prefix    = var.mode == "alias_ip" ? split("/", var.subnet)[1] : "32"
      })
    })
  }

  lifecycle {
    ignore_changes = [network_interface[0].alias_ip_range] # cloudvip moves the alias IP
  }
}

module "cloudvip_package" {
  source      = "../shared/package"
  deb_url     = var.cloudvip_deb_url
  deb_sha256  = var.cloudvip_deb_sha256
  pip_package = var.cloudvip_package
}
