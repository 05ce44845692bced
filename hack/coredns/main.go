// Command coredns is CoreDNS trimmed to what the local cluster's DNS needs: the kubernetes
// plugin (Services, headless Services' pod names: the MPI Operator's hostfile names workers
// `<job>-worker-<i>.<job>.<ns>.svc`), cache, errors, bind (only the pod bridge's address),
// and health and ready (loopback, for the cluster's readiness check). No forward plugin: pods
// on the local node reach nothing beyond the pod bridge, so names outside the cluster domain
// are refused at once rather than forwarded where they could not be used.
//
// CoreDNS's documented way to choose plugins at build time ("compilation with a custom main"):
// import the plugins and set dnsserver.Directives, in the order of CoreDNS's plugin.cfg.
// hack/build-tools.sh builds it (cached by COREDNS_VERSION and a hash of these sources);
// hack/ferrydev/cluster/dns.py runs it.
package main

import (
	"github.com/coredns/coredns/core/dnsserver"
	"github.com/coredns/coredns/coremain"

	_ "github.com/coredns/coredns/plugin/bind"
	_ "github.com/coredns/coredns/plugin/cache"
	_ "github.com/coredns/coredns/plugin/errors"
	_ "github.com/coredns/coredns/plugin/health"
	_ "github.com/coredns/coredns/plugin/kubernetes"
	_ "github.com/coredns/coredns/plugin/log"
	_ "github.com/coredns/coredns/plugin/ready"
)

// directives in CoreDNS's plugin.cfg order (the order a query passes through them).
var directives = []string{
	"bind",
	"ready",
	"health",
	"errors",
	"log",
	"cache",
	"kubernetes",
}

func init() {
	dnsserver.Directives = directives
}

func main() {
	coremain.Run()
}
