package tfesim

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"

	"go.yaml.in/yaml/v3"
)

// Scenario is the YAML description of a simulated installation: how long
// run phases take, its organizations, their workspaces with settings and
// behaviour, run triggers and notification configurations. See
// examples/scenario.yaml.
type Scenario struct {
	// Timing, when set, replaces the simulator's phase durations as the
	// scenario loads.
	Timing        *Timing            `yaml:"timing"`
	Organizations []OrganizationSpec `yaml:"organizations"`
}

// OrganizationSpec is one organization of a Scenario.
type OrganizationSpec struct {
	Name          string                 `yaml:"name"`
	Email         string                 `yaml:"email"`
	Workspaces    []WorkspaceSpec        `yaml:"workspaces"`
	RunTriggers   []RunTriggerSpec       `yaml:"run_triggers"`
	Notifications []ScenarioNotification `yaml:"notifications"`
}

// RunTriggerSpec is the edge Source → Target, by workspace name.
type RunTriggerSpec struct {
	Source string `yaml:"source"`
	Target string `yaml:"target"`
}

// ScenarioNotification installs a generic notification configuration on
// the named workspaces, or on every workspace of the organization when
// Workspaces is empty. Scenario notifications are not verified on load.
type ScenarioNotification struct {
	NotificationSpec `yaml:",inline"`
	Workspaces       []string `yaml:"workspaces"`
}

// ParseScenario decodes a scenario, refusing unknown fields.
func ParseScenario(r io.Reader) (*Scenario, error) {
	dec := yaml.NewDecoder(r)
	dec.KnownFields(true)
	var sc Scenario
	if err := dec.Decode(&sc); err != nil {
		if errors.Is(err, io.EOF) {
			return &sc, nil
		}
		return nil, fmt.Errorf("parse scenario: %w", err)
	}
	return &sc, nil
}

// LoadScenarioFile reads a scenario file and loads it.
func (s *Sim) LoadScenarioFile(path string) error {
	b, err := os.ReadFile(path)
	if err != nil {
		return fmt.Errorf("read scenario: %w", err)
	}
	sc, err := ParseScenario(bytes.NewReader(b))
	if err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	if err := s.LoadScenario(sc); err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	return nil
}

// LoadScenario adds a scenario's objects. Every workspace starts with one
// uploaded configuration version unless it says no_configuration. The
// scenario is checked in full first: on error nothing is added.
func (s *Sim) LoadScenario(sc *Scenario) error {
	scratch, err := New(Options{Token: "scratch", Clock: s.clock})
	if err != nil {
		return err
	}
	if err := scratch.applyScenario(sc); err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, o := range sc.Organizations {
		if s.orgs[o.Name] != nil {
			return fmt.Errorf("organization %q already exists", o.Name)
		}
	}
	return s.applyScenarioLocked(sc)
}

func (s *Sim) applyScenario(sc *Scenario) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.applyScenarioLocked(sc)
}

func (s *Sim) applyScenarioLocked(sc *Scenario) error {
	if sc.Timing != nil {
		if err := sc.Timing.validate(); err != nil {
			return fmt.Errorf("timing: %w", err)
		}
		s.timing = *sc.Timing
	}
	for _, o := range sc.Organizations {
		if _, err := s.addOrganization(o.Name, o.Email); err != nil {
			return fmt.Errorf("organization %q: %w", o.Name, err)
		}
		for _, spec := range o.Workspaces {
			ws, err := s.addWorkspace(o.Name, spec)
			if err != nil {
				return fmt.Errorf("organization %q: workspace %q: %w", o.Name, spec.Name, err)
			}
			if !spec.NoConfiguration {
				s.addConfigVersion(ws, cvSpec{}, true)
			}
		}
		for _, t := range o.RunTriggers {
			source, target := s.workspaceByName(o.Name, t.Source), s.workspaceByName(o.Name, t.Target)
			if source == nil || target == nil {
				return fmt.Errorf("organization %q: run trigger %s → %s: unknown workspace", o.Name, t.Source, t.Target)
			}
			if _, err := s.addRunTrigger(target, source); err != nil {
				return fmt.Errorf("organization %q: run trigger %s → %s: %w", o.Name, t.Source, t.Target, err)
			}
		}
		for _, n := range o.Notifications {
			targets := n.Workspaces
			if len(targets) == 0 {
				for _, spec := range o.Workspaces {
					targets = append(targets, spec.Name)
				}
			}
			for _, name := range targets {
				ws := s.workspaceByName(o.Name, name)
				if ws == nil {
					return fmt.Errorf("organization %q: notification %q: unknown workspace %q", o.Name, n.Name, name)
				}
				if _, err := s.addNotification(ws, "", n.NotificationSpec); err != nil {
					return fmt.Errorf("organization %q: notification %q: %w", o.Name, n.Name, err)
				}
			}
		}
	}
	return nil
}

// WorkspaceID returns the ID of the workspace org/name, or "" if there is none.
func (s *Sim) WorkspaceID(org, name string) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	if ws := s.workspaceByName(org, name); ws != nil {
		return ws.id
	}
	return ""
}
