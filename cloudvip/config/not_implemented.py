"""keepalived keywords that cloudvip knows and does not act on, each with the reason its warning
gives: whatever keepalived reads, cloudvip either implements or names, never drops silently.

The lists cover keepalived 2.4.3's VRRP and global parsers (tests/data/keepalived-2.4.3-keywords.txt,
checked by tests/unit/test_keyword_coverage.py).
"""

from __future__ import annotations

MAIL = "keepalived's e-mail alerts"
SNMP = "keepalived's SNMP and D-Bus interfaces"
CHECKER = "keepalived's checker (LVS) and BFD processes"
PROCESS = "keepalived's process names, scheduling and limits"
DUMPS = "keepalived's state dumps, reload helpers and file locations"
FIREWALL = "keepalived's firewall rules for the VIPs (iptables/ipsets/nftables)"
VMAC = "virtual MACs and interfaces (a cloud VPC ignores them; cloudvip moves the address)"
NETLINK = "keepalived's netlink and receive buffer sizes"

TOP: dict[str, str] = {
    "static_ipaddress": "static addresses are the OS's job (systemd-networkd, ifupdown)",
    "static_routes": "static routes are the OS's job",
    "static_rules": "static rules are the OS's job",
    "linkbeat_interfaces": "link state comes from netlink",
    "linkbeat_use_polling": "link state comes from netlink",
    "bfd_instance": CHECKER,
    "garp_group": "gratuitous ARP groups (cloudvip sends garp_master_* per instance)",
    "track_group": "static track groups",
    "net_namespace": "cloudvip runs in the namespace it is started in",
    "net_namespace_ipvs": CHECKER,
    "namespace_with_ipsets": FIREWALL,
    "instance": DUMPS,
    "use_pid_dir": DUMPS,
    "child_wait_time": PROCESS,
    "interface_up_down_delays": "interface up/down delays are not implemented",
}

GLOBAL: dict[str, str] = {
    **dict.fromkeys(("notification_email", "notification_email_from", "smtp_server", "smtp_connect_timeout",
                     "smtp_helo_name", "smtp_alert", "smtp_alert_vrrp", "smtp_alert_checker", "no_email_faults",
                     "no_checker_emails", "checker_log_all_failures"), MAIL),
    **dict.fromkeys(("enable_traps", "enable_snmp_vrrp", "enable_snmp_keepalived", "enable_snmp_rfc",
                     "enable_snmp_rfcv2", "enable_snmp_rfcv3", "enable_snmp_checker", "snmp_socket", "enable_dbus",
                     "dbus_service_name", "dbus_no_interface_name", "snmp_vs_stats_update_interval",
                     "snmp_rs_stats_update_interval"), SNMP),
    **dict.fromkeys(("lvs_sync_daemon", "lvs_flush", "lvs_flush_on_stop", "lvs_flush_onstop",
                     "lvs_timeouts", "lvs_notify_fifo", "lvs_notify_fifo_script", "lvs_netlink_cmd_rcv_bufs",
                     "lvs_netlink_cmd_rcv_bufs_force", "lvs_netlink_monitor_rcv_bufs",
                     "lvs_netlink_monitor_rcv_bufs_force", "checker_priority", "checker_no_swap",
                     "checker_rt_priority", "checker_cpu_affinity", "checker_rlimit_rttime", "checker_rlimit_rtime",
                     "checker_process_name", "lvs_process_name", "bfd_process_name", "bfd_priority", "bfd_no_swap",
                     "bfd_rt_priority", "bfd_cpu_affinity", "bfd_rlimit_rttime", "bfd_rlimit_rtime",
                     "nftables_ipvs", "nftables_ipvs_priority", "nftables_ipvs_start_fwmark", "rs_init_notifies"),
                    CHECKER),
    **dict.fromkeys(("process_names", "process_name", "vrrp_process_name", "vrrp_priority", "vrrp_no_swap",
                     "vrrp_rt_priority", "vrrp_cpu_affinity", "vrrp_rlimit_rttime", "vrrp_rlimit_rtime",
                     "max_auto_priority", "min_auto_priority_delay", "umask", "random_seed",
                     "process_monitor_rcv_bufs",
                     "process_monitor_rcv_bufs_force", "startup_script", "startup_script_timeout",
                     "shutdown_script", "shutdown_script_timeout"), PROCESS),
    **dict.fromkeys(("use_symlink_paths", "reload_check_config", "reload_time_file", "reload_repeat", "reload_file",
                     "include_check", "config_save_dir", "tmp_config_directory", "data_use_instance",
                     "json_version", "iproute_usr_dir", "iproute_etc_dir", "state_dump_file", "stats_dump_file",
                     "json_dump_file"), DUMPS),
    **dict.fromkeys(("vrrp_iptables", "vrrp_ipsets", "nftables", "nftables_priority", "nftables_ifindex",
                     "nftables_counters"), FIREWALL),
    **dict.fromkeys(("vmac_prefix", "vmac_addr_prefix", "vrrp_vmac_garp_intvl", "vrrp_garp_extra_if"), VMAC),
    **dict.fromkeys(("vrrp_netlink_cmd_rcv_bufs", "vrrp_netlink_cmd_rcv_bufs_force", "vrrp_netlink_monitor_rcv_bufs",
                     "vrrp_netlink_monitor_rcv_bufs_force", "vrrp_rx_bufs_policy", "vrrp_rx_bufs_multiplier"),
                    NETLINK),
    "vrrp_mcast_group4": "a custom multicast group (cloudvip uses 224.0.0.18 and ff02::12)",
    "vrrp_mcast_group6": "a custom multicast group (cloudvip uses 224.0.0.18 and ff02::12)",
    "vrrp_garp_interval": "a pause between gratuitous ARPs on one interface",
    "vrrp_gna_interval": "a pause between unsolicited NAs on one interface",
    "vrrp_min_garp": "the minimal gratuitous ARP set",
    "vrrp_garp_lower_prio_delay": "gratuitous ARPs in answer to a lower-priority master",
    "vrrp_garp_lower_prio_repeat": "gratuitous ARPs in answer to a lower-priority master",
    "vrrp_higher_prio_send_advert": "an advert before stepping down for a higher priority",
    "vrrp_down_timer_adverts": "a custom number of missed adverts before taking over (RFC: 3)",
    "vrrp_owner_ignore_adverts": "an address owner that ignores adverts",
    "vrrp_notify_priority_changes": "notifications of priority changes",
    "v3_checksum_as_v2": "VRRPv3 checksums without the pseudo-header (old keepalived)",
    "disable_local_igmp": "IGMP reports for 224.0.0.0/24",
    "dynamic_interfaces": "interfaces that come and go (cloudvip needs the interface at start)",
    "default_interface": "a default interface for instances without one",
    "fifo_write_vrrp_states_on_reload": "the states written to the notify FIFO at a reload",
    "log_unknown_vrids": "a log line per advert of an unknown VRID (cloudvip counts them)",
}

INSTANCE: dict[str, str] = {
    **dict.fromkeys(("use_vmac", "use_vmac_addr", "vmac_xmit_base", "use_ipvlan", "garp_extra_if",
                     "vmac_garp_intvl", "vrf"), VMAC),
    "virtual_routes": "virtual routes (the cloud's route table is the aws provider's route_table mode)",
    "virtual_rules": "virtual rules",
    "mcast_dst_ip": "a custom multicast group (cloudvip uses 224.0.0.18 and ff02::12)",
    "native_ipv6": "IPv6 link-local handling of VMACs",
    "track_bfd": CHECKER,
    "promote_secondaries": "promoting secondary addresses when the primary goes",
    "linkbeat_use_polling": "link state comes from netlink",
    "accept": "accept mode (the VIPs answer whatever the mode)",
    "no_accept": "accept mode (the VIPs answer whatever the mode)",
    "debug": "keepalived's debug level (use cloudvip run --log-level)",
    "notify_deleted": "the deleted state in notifications",
    "smtp_alert": MAIL,
    "lvs_sync_daemon_interface": CHECKER,
    "down_timer_adverts": "a custom number of missed adverts before taking over (RFC: 3)",
    "kernel_rx_buf_size": NETLINK,
    "unicast_fault_no_peer": "FAULT when the unicast peer list is empty",
    "old_unicast_checksum": "old keepalived's unicast checksum",
    "v3_checksum_as_v2": "VRRPv3 checksums without the pseudo-header (old keepalived)",
    "track_src_ip": "tracking the unicast source address",
    "notify_priority_changes": "notifications of priority changes",
    "garp_lower_prio_delay": "gratuitous ARPs in answer to a lower-priority master",
    "garp_lower_prio_repeat": "gratuitous ARPs in answer to a lower-priority master",
    "timer_expired_backup": "a BACKUP transition when the master-down timer expires in FAULT",
    "thread_timer_expired": "a BACKUP transition when the master-down timer expires in FAULT",
    "higher_prio_send_advert": "an advert before stepping down for a higher priority",
    "owner_ignore_adverts": "an address owner that ignores adverts",
}

SYNC_GROUP: dict[str, str] = {
    "smtp_alert": MAIL,
    "global_tracking": "the old spelling of sync_group_tracking_weight",
    "sync_group_tracking_weight": "weights of a sync group's tracked objects (cloudvip puts its members in "
                                  "FAULT instead)",
    "notify_priority_changes": "notifications of priority changes",
    "track_bfd": CHECKER,
}
