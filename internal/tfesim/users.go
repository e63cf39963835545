package tfesim

import (
	"context"
	"crypto/md5"
	"encoding/hex"
	"fmt"
	"net/http"
)

// Users. Every token belongs to a user, as TFE user tokens do: the site
// admin (Options.Token) is "admin", the tokens of Options.UserTokens are
// "user1", "user2", ... Runs, locks and comments record who made them.

type user struct {
	id        string
	username  string
	email     string
	siteAdmin bool
}

// newUsers makes the users behind the options' tokens, keyed by token.
func newUsers(opts Options) map[string]*user {
	users := map[string]*user{
		opts.Token: {id: newID("user"), username: "admin", email: "admin@tfesim.test", siteAdmin: true},
	}
	for i, tok := range opts.UserTokens {
		name := fmt.Sprintf("user%d", i+1)
		users[tok] = &user{id: newID("user"), username: name, email: name + "@tfesim.test"}
	}
	return users
}

func (s *Sim) userByID(id string) *user {
	for _, u := range s.users {
		if u.id == id {
			return u
		}
	}
	return nil
}

type principalKey struct{}

// actor is the user whose token authenticated the request.
func actor(r *http.Request) *user {
	p, _ := r.Context().Value(principalKey{}).(principal)
	return p.user
}

func withPrincipal(r *http.Request, p principal) *http.Request {
	return r.WithContext(context.WithValue(r.Context(), principalKey{}, p))
}

func avatarURL(u *user) string {
	sum := md5.Sum([]byte(u.email))
	return "https://www.gravatar.com/avatar/" + hex.EncodeToString(sum[:]) + "?s=100&d=mm"
}

// userResource renders u as other users see it: no e-mail address.
func userResource(u *user) resource {
	return resource{
		ID: u.id, Type: "users",
		Attributes: map[string]any{
			"username":           u.username,
			"is-service-account": false,
			"auth-method":        "tfe",
			"avatar-url":         avatarURL(u),
			"v2-only":            false,
			"permissions": map[string]any{
				"can-create-organizations": u.siteAdmin, "can-change-email": true, "can-change-username": true,
			},
		},
		Relationships: map[string]relationship{
			"authentication-tokens": {Data: nil, Links: map[string]string{"related": apiPrefix + "/users/" + u.id + "/authentication-tokens"}},
		},
		Links: map[string]any{"self": apiPrefix + "/users/" + u.id},
	}
}

// accountResource renders u to itself, as GET /account/details does: with
// its e-mail address and whether it is a site admin.
func accountResource(u *user) resource {
	res := userResource(u)
	res.Attributes["email"] = u.email
	res.Attributes["unconfirmed-email"] = nil
	res.Attributes["is-site-admin"] = u.siteAdmin
	res.Attributes["is-sso-login"] = false
	res.Attributes["two-factor"] = map[string]any{"enabled": false, "verified": false}
	res.Relationships["authenticated-resource"] = toOne("users", u.id)
	return res
}

func (s *Sim) accountDetails(w http.ResponseWriter, r *http.Request) error {
	writeJSON(w, http.StatusOK, document{Data: accountResource(actor(r))})
	return nil
}

func (s *Sim) showUser(w http.ResponseWriter, r *http.Request) error {
	u := s.userByID(r.PathValue("id"))
	if u == nil {
		return errNotFound()
	}
	writeJSON(w, http.StatusOK, document{Data: userResource(u)})
	return nil
}
