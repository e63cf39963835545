package tfesim

import (
	"net/http"
	"regexp"
	"slices"
	"strconv"
	"strings"
)

// Admin Terraform versions: which versions workspaces may use.

var validVersion = regexp.MustCompile(`^\d+\.\d+\.\d+(-[0-9A-Za-z.]+)?$`)

// seedToolVersions installs the versions a fresh installation lists.
func (s *Sim) seedToolVersions() {
	for _, v := range []struct {
		version    string
		enabled    bool
		deprecated string
	}{
		{"0.11.8", false, ""},
		{"0.12.31", true, "Terraform 0.12 is no longer supported"},
		{"1.5.7", true, ""},
		{"1.9.8", true, ""},
	} {
		_, _ = s.addToolVersion(toolVersion{
			version:          v.version,
			url:              "https://releases.hashicorp.com/terraform/" + v.version + "/terraform_" + v.version + "_linux_amd64.zip",
			sha:              strings.Repeat("0", 64),
			official:         true,
			enabled:          v.enabled,
			deprecated:       v.deprecated != "",
			deprecatedReason: v.deprecated,
		})
	}
}

func (s *Sim) addToolVersion(tv toolVersion) (*toolVersion, error) {
	if !validVersion.MatchString(tv.version) {
		return nil, errUnprocessable("version must be a semantic version, N.N.N or N.N.N-name")
	}
	if tv.url == "" {
		return nil, errUnprocessable("url can't be blank")
	}
	if tv.sha == "" {
		return nil, errUnprocessable("sha can't be blank")
	}
	for _, o := range s.tools {
		if o.version == tv.version {
			return nil, errUnprocessable("version has already been taken")
		}
	}
	tv.id = s.uniqueID("tool", func(id string) bool { return s.tools[id] != nil })
	tv.createdAt = s.clock.Now()
	s.tools[tv.id] = &tv
	return &tv, nil
}

// latestToolVersion is the newest enabled version, the default for new workspaces.
func (s *Sim) latestToolVersion() string {
	best := ""
	for _, tv := range s.tools {
		if tv.enabled && !tv.beta && compareVersions(tv.version, best) > 0 {
			best = tv.version
		}
	}
	return best
}

func compareVersions(a, b string) int {
	pa, pb := strings.Split(strings.SplitN(a, "-", 2)[0], "."), strings.Split(strings.SplitN(b, "-", 2)[0], ".")
	for i := range max(len(pa), len(pb)) {
		var x, y int
		if i < len(pa) {
			x, _ = strconv.Atoi(pa[i])
		}
		if i < len(pb) {
			y, _ = strconv.Atoi(pb[i])
		}
		if x != y {
			return x - y
		}
	}
	return strings.Compare(a, b)
}

func (s *Sim) toolUsage(version string) int {
	n := 0
	for _, ws := range s.workspaces {
		if ws.terraformVersion == version {
			n++
		}
	}
	return n
}

func (s *Sim) toolResource(tv *toolVersion) resource {
	return resource{
		ID: tv.id, Type: "terraform-versions",
		Attributes: map[string]any{
			"version":           tv.version,
			"url":               tv.url,
			"sha":               tv.sha,
			"deprecated":        tv.deprecated,
			"deprecated-reason": nullString(tv.deprecatedReason),
			"official":          tv.official,
			"enabled":           tv.enabled,
			"beta":              tv.beta,
			"usage":             s.toolUsage(tv.version),
			"created-at":        timestamp(tv.createdAt),
		},
	}
}

// listToolVersions lists versions, newest first; filter[version] matches
// exactly and takes precedence over search[version], a substring match.
func (s *Sim) listToolVersions(w http.ResponseWriter, r *http.Request) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	q := r.URL.Query()
	exact, search := q.Get("filter[version]"), q.Get("search[version]")
	var list []*toolVersion
	for _, tv := range s.tools {
		switch {
		case exact != "" && tv.version != exact:
		case exact == "" && !strings.Contains(tv.version, search):
		default:
			list = append(list, tv)
		}
	}
	slices.SortFunc(list, func(a, b *toolVersion) int { return compareVersions(b.version, a.version) })
	p := parsePage(q)
	lo, hi := p.bounds(len(list))
	data := make([]resource, 0, hi-lo)
	for _, tv := range list[lo:hi] {
		data = append(data, s.toolResource(tv))
	}
	doc := document{Data: data}
	paginate(&doc, r, p, len(list))
	writeJSON(w, http.StatusOK, doc)
	return nil
}

// applyToolAttrs applies a create or update body to tv.
func applyToolAttrs(tv *toolVersion, body *requestBody) error {
	a := body.attrs()
	a.str("version", &tv.version)
	a.str("url", &tv.url)
	a.str("sha", &tv.sha)
	a.boolean("official", &tv.official)
	a.boolean("enabled", &tv.enabled)
	a.boolean("beta", &tv.beta)
	a.boolean("deprecated", &tv.deprecated)
	if a.has("deprecated-reason") {
		a.str("deprecated-reason", &tv.deprecatedReason)
	}
	if !tv.deprecated {
		tv.deprecatedReason = ""
	}
	var archs []struct {
		URL  string `json:"url"`
		Sha  string `json:"sha"`
		OS   string `json:"os"`
		Arch string `json:"arch"`
	}
	if a.decode("archs", &archs) {
		for _, arch := range archs {
			if arch.OS == "linux" && arch.Arch == "amd64" {
				tv.url, tv.sha = arch.URL, arch.Sha
			}
		}
	}
	return a.err
}

func (s *Sim) createToolVersion(w http.ResponseWriter, r *http.Request) error {
	body, err := decodeBody(r)
	if err != nil {
		return err
	}
	tv := toolVersion{enabled: true}
	if err := applyToolAttrs(&tv, body); err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	created, err := s.addToolVersion(tv)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusCreated, document{Data: s.toolResource(created)})
	return nil
}

func (s *Sim) showToolVersion(w http.ResponseWriter, r *http.Request) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	tv := s.tools[r.PathValue("id")]
	if tv == nil {
		return errNotFound()
	}
	writeJSON(w, http.StatusOK, document{Data: s.toolResource(tv)})
	return nil
}

func (s *Sim) updateToolVersion(w http.ResponseWriter, r *http.Request) error {
	body, err := decodeBody(r)
	if err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	tv := s.tools[r.PathValue("id")]
	if tv == nil {
		return errNotFound()
	}
	draft := *tv
	if err := applyToolAttrs(&draft, body); err != nil {
		return err
	}
	if !validVersion.MatchString(draft.version) {
		return errUnprocessable("version must be a semantic version, N.N.N or N.N.N-name")
	}
	for _, o := range s.tools {
		if o != tv && o.version == draft.version {
			return errUnprocessable("version has already been taken")
		}
	}
	*tv = draft
	writeJSON(w, http.StatusOK, document{Data: s.toolResource(tv)})
	return nil
}

// deleteToolVersion refuses, with 422, official versions and versions in use.
func (s *Sim) deleteToolVersion(w http.ResponseWriter, r *http.Request) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	tv := s.tools[r.PathValue("id")]
	if tv == nil {
		return errNotFound()
	}
	if tv.official {
		return errUnprocessable("official Terraform versions cannot be removed")
	}
	if n := s.toolUsage(tv.version); n > 0 {
		return errUnprocessable("the version is used by " + strconv.Itoa(n) + " workspaces and cannot be removed")
	}
	delete(s.tools, tv.id)
	w.WriteHeader(http.StatusNoContent)
	return nil
}
