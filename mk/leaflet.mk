# The dashboard's map library, vendored: core/api/web/package.json pins
# Leaflet, and `make leaflet` installs exactly its lock file's version with
# npm and copies the dist files into core/api/static/leaflet/, which is
# committed and embedded (go:embed), so `go build` never needs npm. Run it
# after changing the pinned version, then commit the copy.
LEAFLET_WEB    := core/api/web
LEAFLET_STATIC := core/api/static/leaflet

.PHONY: leaflet
leaflet: ## refresh the vendored Leaflet (core/api/static/leaflet) from npm, as pinned in core/api/web
	cd $(LEAFLET_WEB) && npm ci --no-audit --no-fund --ignore-scripts
	rm -rf $(LEAFLET_STATIC) && mkdir -p $(LEAFLET_STATIC)
	cp -r $(LEAFLET_WEB)/node_modules/leaflet/dist/leaflet.js $(LEAFLET_WEB)/node_modules/leaflet/dist/leaflet.css \
		$(LEAFLET_WEB)/node_modules/leaflet/dist/images $(LEAFLET_WEB)/node_modules/leaflet/LICENSE $(LEAFLET_STATIC)/
	rm -rf $(LEAFLET_WEB)/node_modules
