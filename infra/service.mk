# Every service's build, written once: services/<svc>/Makefile includes this file. `sam build`
# (BuildMethod: makefile) runs target build-Function in a scratch copy of the service folder,
# so the service and the repository root are found from the Makefiles' own paths. The build
# itself is packages/fleet/src/fleet/build.py: the service's own code and bytecode; the shared
# layers (infra/layers/) bring mcp_common and the locked third-party packages.
SERVICE := $(notdir $(abspath $(dir $(firstword $(MAKEFILE_LIST)))))
ROOT := $(abspath $(dir $(lastword $(MAKEFILE_LIST)))/..)

build-Function:
	cd "$(ROOT)" && uv run --frozen fleet build $(SERVICE) --out "$(ARTIFACTS_DIR)"
