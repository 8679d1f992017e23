package fsm

import (
	"fmt"

	statev1 "concord/gen/concord/state/v1"
	concordv1 "concord/gen/concord/v1"
)

func init() {
	registerCommand(BootstrapRegistryType, (*FSM).applyBootstrapRegistry)
	registerCommand(ApplyRegistryChangeType, (*FSM).applyRegistryChange)
}

// applyBootstrapRegistry returns nil or an error.
func (f *FSM) applyBootstrapRegistry(body []byte, index uint64) any {
	var cmd statev1.BootstrapRegistry
	if err := decode(body, &cmd); err != nil {
		return err
	}
	if err := f.State().BootstrapRegistry(index, &cmd); err != nil {
		return err
	}
	return nil
}

// applyRegistryChange returns the *statev1.AppliedChange or an error. The service verified the
// envelope's signature and validated the change before appending the command, so the payload is
// parsed here without checking either again; the state store re-checks the registry rules.
func (f *FSM) applyRegistryChange(body []byte, index uint64) any {
	var cmd statev1.ApplyRegistryChange
	if err := decode(body, &cmd); err != nil {
		return err
	}
	var change concordv1.RegistryChange
	if err := decode(cmd.GetEnvelope().GetPayload(), &change); err != nil {
		return fmt.Errorf("registry change payload: %w", err)
	}
	applied, err := f.State().ApplyRegistryChange(index, &change, &cmd)
	if err != nil {
		return err
	}
	return applied
}
