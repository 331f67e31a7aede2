#!/bin/bash
# Dockyard: the update gate of one swarm service (components/swarm-fleet.ts). Run on the first
# manager over SSH after the provider created or updated the service.
#   update-gate.sh <timeout seconds> <service name> <image>
# Waits until swarm's UpdateStatus of the service is absent or `completed` AND every running
# task of the service runs <image> (at least as many as its replicas, in replicated mode).
# Exit 1 with swarm's UpdateStatus message when swarm rolled the update back or paused it
# (rollback_started, rollback_completed, paused, rollback_paused), or when the timeout passed.
#
# Why, although the provider waits for convergence itself: its wait
# (kreuzwerker/terraform-provider-docker internal/provider/resource_docker_service_funcs.go,
# resourceDockerServiceUpdateRefreshFunc + replicatedConsoleLogUpdater.update) counts running
# tasks by slot while UpdateStatus is `updating`; once the new task failed and before swarm
# starts the rollback, the old tasks fill every slot and it reports the update complete.
# A state left from an earlier update does not pass or fail this one: every update that is no
# rollback resets UpdateStatus to none (moby/swarmkit manager/controlapi/service.go
# UpdateService), so "none" means the new spec's tasks decide, by their image.
set -euo pipefail

timeout=$1
service=$2
image=$3
deadline=$((SECONDS + timeout))

fail() {
  echo "dockyard: service $service: $1" >&2
  exit 1
}

while :; do
  # "<state>|<replicas>|<message>" (docker/cli formats the API's Service; a pointer prints its value).
  # A failed query (a manager without a leader for a moment, e.g. while managers are replaced)
  # is asked again until the timeout.
  if ! info=$(docker service inspect --format '{{if .UpdateStatus}}{{.UpdateStatus.State}}{{end}}|{{if .Spec.Mode.Replicated}}{{.Spec.Mode.Replicated.Replicas}}{{end}}|{{if .UpdateStatus}}{{.UpdateStatus.Message}}{{end}}' "$service" 2>&1); then
    ((SECONDS >= deadline)) && fail "docker service inspect failed within ${timeout}s: $info"
    sleep 2
    continue
  fi
  IFS='|' read -r state replicas message <<<"$info"
  case $state in
    rollback_started | rollback_completed | paused | rollback_paused)
      fail "swarm's update status is $state: ${message:-no message}; the update to $image did not converge" ;;
  esac
  last="update status: ${state:-none}"
  if [[ -z $state || $state == completed ]]; then
    # "<image> <current state>" per task swarm wants running (docker/cli task formatter:
    # --no-trunc keeps the digest; CurrentState is "Running 5 seconds ago").
    if ! tasks=$(docker service ps --no-trunc --filter desired-state=running --format '{{.Image}} {{.CurrentState}}' "$service" 2>&1); then
      last="$last, docker service ps failed: $tasks"
    else
      new=0
      old=0
      while read -r task_image current _; do
        [[ $current == Running ]] || continue
        if [[ $task_image == "$image" ]]; then new=$((new + 1)); else old=$((old + 1)); fi
      done <<<"$tasks"
      if ((old == 0 && new >= ${replicas:-0})); then
        echo "dockyard: service $service: update ${state:-done}, $new running task(s) of $image"
        exit 0
      fi
      last="$last, running tasks: $new of $image (want ${replicas:-all}), $old of another image"
    fi
  fi
  ((SECONDS >= deadline)) && fail "not converged within ${timeout}s ($last); the update to $image did not converge"
  sleep 2
done
