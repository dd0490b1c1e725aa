# A fleet of spacecores on Nomad: one allocation per spacecore, each running `hac-launch` on its
# client's /dev/kvm. docs/operations.md ("Beyond one host") explains every choice made here.
#
# Each group is one AVS operator node (a signer: its spec has [spec.avs]) with count = 1: a signer
# is never scaled (hac refuses scaling = "HorizontalAutoScaling" on it), so a group is never
# given a count above 1 and has no canary. The groups are made by one `dynamic "group"` block,
# one per entry of local.operators (HCL2, as `nomad job run` reads it): to add an operator, add
# an entry with its own name, ports and disk (its spec, disk path and password file follow from
# the name).
#
# The raw_exec driver runs the launcher as root on the client, as systemd would: it needs root to
# make the spacecore's network namespace and tap and to open /dev/kvm, then confines itself
# (seccomp, no capabilities, the spacecore user). Enable it on the KVM clients only
# (plugin "raw_exec" { config { enabled = true } }), and give those clients the node meta
# spacecore_kvm = "true" and, for each disk they hold, spacecore_disk_NAME = "true".
#
# Checked by `cargo xtask test` (step 6): parsed as HCL, its locals and dynamic blocks expanded,
# its blocks and attributes checked against the jobspec keys this file may use, and each group's
# spec validated by hac, as `hac-launch --check` would.

locals {
  # One operator node each: its published HTTP and metrics ports, and the node meta key that
  # marks the client holding its disk.
  operators = {
    "avs-a" = { http = 18081, metrics = 9101, disk_meta = "spacecore_disk_avs_a" }
    "avs-b" = { http = 18082, metrics = 9102, disk_meta = "spacecore_disk_avs_b" }
  }
}

job "spacecore" {
  datacenters = ["dc1"]
  type        = "service"

  constraint {
    attribute = "${attr.kernel.name}"
    value     = "linux"
  }

  constraint {
    attribute = "${meta.spacecore_kvm}"
    value     = "true"
  }

  dynamic "group" {
    for_each = local.operators
    labels   = [group.key]

    content {
      # One instance: one operator key, one signing history.
      count = 1

      # The disk (the operator's key file and signing history) lives on one client: the group runs
      # only there, and never moves elsewhere with a fresh disk.
      constraint {
        attribute = "$${meta.${group.value.disk_meta}}"
        value     = "true"
      }

      # A new version replaces the old allocation: stopped first, then started (no canary, which
      # would run two).
      update {
        max_parallel     = 1
        canary           = 0
        health_check     = "checks"
        min_healthy_time = "10s"
        healthy_deadline = "2m"
      }

      # The launcher restarts a failing guest itself (spec.failover); Nomad restarts the launcher
      # when it exits with an error, and gives up if that keeps happening.
      restart {
        attempts = 5
        interval = "10m"
        delay    = "5s"
        mode     = "fail"
      }

      network {
        port "http" {
          static = group.value.http
        }
        port "metrics" {
          static = group.value.metrics
        }
      }

      # The node's health, through its published port (200 healthy, 206 partially healthy, 503
      # an operator node that will not sign).
      service {
        name     = "spacecore-${group.key}"
        provider = "nomad"
        port     = "http"

        check {
          type     = "http"
          path     = "/eigen/node/health"
          interval = "10s"
          timeout  = "2s"
        }
      }

      # The launcher's metrics (with the sidecar: the guest's too), for Prometheus' Nomad
      # service discovery.
      service {
        name     = "spacecore-${group.key}-metrics"
        provider = "nomad"
        port     = "metrics"
        tags     = ["prometheus"]
      }

      task "hac-launch" {
        driver = "raw_exec"

        config {
          command = "/usr/local/bin/hac-launch"
          args    = ["--stop-timeout", "5000", "local/spacecore.toml"]
        }

        env {
          SPACECORE_IMAGE_STORE = "/var/lib/spacecore/images"
        }

        # The keystore password file stays on the client (chmod 600, root), named by the spec.
        template {
          destination = "local/spacecore.toml"
          change_mode = "restart"
          data        = <<-EOT
            apiVersion = "vistara.eigenlayer/v1"
            kind = "AVSSpaceCore"

            [metadata]
            name = "${group.key}"

            [spec.resources]
            cpu = 1
            memory = "512Mi"
            storage = "64Mi"

            [spec.storage]
            path = "/var/lib/spacecore/${group.key}/disk.img"

            [spec.networking]
            publish_address = "0.0.0.0"

            [spec.networking.inbound_ports]
            HTTP = 8080

            [spec.networking.publish]
            HTTP = ${group.value.http}

            [spec.deployment]
            image = "spacecore:latest"

            [spec.avs]
            aggregator = "10.0.10.5:8090"
            eth_rpc = "10.0.10.6:8545"
            task_manager = "0x5FbDB2315678afecb367f032d93F642f64180aa3"
            keystore_password_file = "/etc/spacecore/${group.key}.password"

            [spec.observability]
            monitoring = "Prometheus"
            metrics_address = "0.0.0.0:${group.value.metrics}"
            sidecar = true
            logging = "Loki/Fluentd/ELK"

            [spec.operations]
            scaling = "None"

            [spec.failover]
            strategy = "auto-recovery"
            max_restarts = 5
            restart_window = "60s"
          EOT
        }

        # SIGTERM: the guest finishes the task in flight and flushes its disk; more time than the
        # launcher's --stop-timeout before SIGKILL.
        kill_signal  = "SIGTERM"
        kill_timeout = "10s"

        # The launcher and its guest: the spec's vCPU and 512 MiB, plus the launcher.
        resources {
          cpu    = 1000
          memory = 768
        }
      }
    }
  }
}
