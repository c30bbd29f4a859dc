#!/bin/sh
# Writes one containerd hosts.toml per registry on this node, from the
# ConfigMap's hosts/*.toml files: CERTS_D/<registry>/hosts.toml, with @MIRROR@
# replaced by docxy's address as the node reaches it. Run by the DaemonSet's
# init container (daemonset.yaml); containerd reads these files at each pull,
# so nothing restarts.
set -eu
: "${SOURCE:?directory of <registry>.toml files}" "${CERTS_D:?containerd certs.d directory}" "${MIRROR:?docxy URL}"

for file in "$SOURCE"/*.toml; do
  registry=$(basename "$file" .toml)
  mkdir -p "$CERTS_D/$registry"
  # Written aside and renamed, so that a pull never reads half a file.
  sed "s|@MIRROR@|$MIRROR|g" "$file" >"$CERTS_D/$registry/hosts.toml.new"
  mv "$CERTS_D/$registry/hosts.toml.new" "$CERTS_D/$registry/hosts.toml"
  echo "wrote $registry/hosts.toml: $registry through $MIRROR"
done

# The kubelet's pulls read certs.d only when containerd's CRI plugin has this
# config_path (README "containerd / Kubernetes"); this container cannot change
# containerd's configuration, so it says so.
if ! grep -Eqs "^[[:space:]]*config_path[[:space:]]*=[[:space:]]*[\"'][^\"']*/etc/containerd/certs\.d" "${CONTAINERD_CONFIG:-/dev/null}"; then
  echo "warning: ${CONTAINERD_CONFIG:-containerd's config.toml} sets no config_path = \"/etc/containerd/certs.d\": the kubelet's pulls may ignore these files" >&2
fi
