package tfesim

import (
	"fmt"
	"net/http"
)

// accountDetails answers GET /account/details (go-tfe's Users.ReadCurrent):
// the user the request's token belongs to. A token the simulator does not
// know never gets here: the API's authentication answers it 401 first.
func (s *Sim) accountDetails(w http.ResponseWriter, r *http.Request) error {
	p, _ := s.authenticate(r)
	id, name := adminUserID, adminUser
	if !p.admin {
		for i, t := range s.opts.UserTokens {
			if t == p.token {
				id, name = fmt.Sprintf("user-%016d", i+1), fmt.Sprintf("user%d", i+1)
				break
			}
		}
	}
	writeJSON(w, http.StatusOK, document{Data: resource{
		ID: id, Type: "users",
		Attributes: map[string]any{
			"username":           name,
			"email":              name + "@tfesim.test",
			"avatar-url":         "",
			"is-service-account": false,
			"is-admin":           p.admin,
			"is-site-admin":      p.admin,
			"is-sso-login":       false,
			"v2-only":            false,
			"unconfirmed-email":  nil,
			"two-factor":         map[string]any{"enabled": false, "verified": false},
		},
		Links: map[string]any{"self": apiPrefix + "/users/" + id},
	}})
	return nil
}
