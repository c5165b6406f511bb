package server

// IncrementalAlterConfigs (key 44), versions 0-1.
//
// Behaviour:
//   - Topic resources only; the operations apply, in request order, to the
//     topic's current override set, and the result is validated as a whole
//     (INVALID_CONFIG naming the key) and recorded in the metadata log
//     before the answer. It survives restarts.
//   - SET sets an override; DELETE removes one (deleting a key that is not
//     overridden, or not known, changes nothing, as in Kafka).
//   - APPEND and SUBTRACT (KIP-339) apply only to list configs (of ours,
//     cleanup.policy): they add the listed values not yet present, or
//     remove the listed values, starting from the value in force. On any
//     other key: INVALID_CONFIG.
//   - Kafka's request checks: a resource listed twice is INVALID_REQUEST
//     for each copy; a key listed twice within a resource, a null value for
//     anything but DELETE, or an unknown operation is INVALID_REQUEST.
//   - Broker resources: INVALID_REQUEST; broker settings are static and
//     change only through the config file and a restart.
//   - An unknown topic: UNKNOWN_TOPIC_OR_PARTITION.
//   - ValidateOnly checks everything and changes nothing.
//
// Version notes: v1 is flexible.
//
// Not done: two concurrent requests on the same topic may lose one's
// update (read, modify, write of the override set is not one broker
// operation); alter-config policies.

import (
	"fmt"
	"maps"
	"slices"
	"strings"

	"github.com/oncelog/oncelog/internal/broker"
	"github.com/oncelog/oncelog/internal/config"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

func init() { register(44, 0, 1, handleIncrementalAlterConfigs) }

func handleIncrementalAlterConfigs(c *conn, kreq kmsg.Request) reply {
	req := kreq.(*kmsg.IncrementalAlterConfigsRequest)
	resp := req.ResponseKind().(*kmsg.IncrementalAlterConfigsResponse)
	b := c.s.b
	seen := map[configResource]int{}
	for _, rr := range req.Resources {
		seen[configResource{rr.ResourceType, rr.ResourceName}]++
	}
	for _, rr := range req.Resources {
		sr := kmsg.NewIncrementalAlterConfigsResponseResource()
		sr.ResourceType, sr.ResourceName = rr.ResourceType, rr.ResourceName
		var perr *broker.Error
		if seen[configResource{rr.ResourceType, rr.ResourceName}] > 1 {
			perr = errDuplicateResource
		} else {
			perr = incrementalAlter(b, &rr, req.ValidateOnly)
		}
		if perr != nil {
			sr.ErrorCode = perr.Code.Code
			sr.ErrorMessage = &perr.Message
		}
		resp.Resources = append(resp.Resources, sr)
	}
	return now(resp)
}

func incrementalAlter(b *broker.Broker, rr *kmsg.IncrementalAlterConfigsRequestResource, validateOnly bool) *broker.Error {
	invalid := func(code *kerr.Error, format string, args ...any) *broker.Error {
		return &broker.Error{Code: code, Message: fmt.Sprintf(format, args...)}
	}
	keys := map[string]bool{}
	var nulls []string
	for _, cfg := range rr.Configs {
		if keys[cfg.Name] {
			return invalid(kerr.InvalidRequest, "config %s appears more than once for this resource", cfg.Name)
		}
		keys[cfg.Name] = true
		if cfg.Value == nil && cfg.Op != kmsg.IncrementalAlterConfigOpDelete {
			nulls = append(nulls, cfg.Name)
		}
	}
	if len(nulls) > 0 {
		return invalid(kerr.InvalidRequest, "null value not supported for: %s", strings.Join(nulls, ", "))
	}
	t, perr := alterableTopic(b, rr.ResourceType, rr.ResourceName)
	if perr != nil {
		return perr
	}
	overrides := maps.Clone(t.Overrides)
	if overrides == nil {
		overrides = map[string]string{}
	}
	for _, cfg := range rr.Configs {
		switch cfg.Op {
		case kmsg.IncrementalAlterConfigOpSet:
			overrides[cfg.Name] = *cfg.Value
		case kmsg.IncrementalAlterConfigOpDelete:
			delete(overrides, cfg.Name)
		case kmsg.IncrementalAlterConfigOpAppend, kmsg.IncrementalAlterConfigOpSubtract:
			k, ok := config.LookupTopicKey(cfg.Name)
			if !ok {
				return invalid(kerr.InvalidConfig, "unknown topic config %s", cfg.Name)
			}
			if config.TopicKeyType(k.Name) != "LIST" {
				return invalid(kerr.InvalidConfig, "%s is not a list config: %s applies only to list configs such as cleanup.policy", k.Name, opName(cfg.Op))
			}
			cur, ok := overrides[k.Name]
			if !ok {
				cur = k.Get(&b.Config.TopicDefaults)
			}
			overrides[k.Name] = editList(cur, *cfg.Value, cfg.Op == kmsg.IncrementalAlterConfigOpAppend)
		default:
			return invalid(kerr.InvalidRequest, "unknown operation %d for config %s", cfg.Op, cfg.Name)
		}
	}
	return b.SetTopicConfig(rr.ResourceName, overrides, validateOnly)
}

// editList appends the comma-separated values of v not yet in cur, or
// removes them from cur (KIP-339 APPEND and SUBTRACT).
func editList(cur, v string, appendValues bool) string {
	split := func(s string) []string {
		var out []string
		for _, e := range strings.Split(s, ",") {
			if e = strings.TrimSpace(e); e != "" {
				out = append(out, e)
			}
		}
		return out
	}
	list, edit := split(cur), split(v)
	if appendValues {
		for _, e := range edit {
			if !slices.Contains(list, e) {
				list = append(list, e)
			}
		}
	} else {
		list = slices.DeleteFunc(list, func(e string) bool { return slices.Contains(edit, e) })
	}
	return strings.Join(list, ",")
}

func opName(op kmsg.IncrementalAlterConfigOp) string {
	if op == kmsg.IncrementalAlterConfigOpAppend {
		return "APPEND"
	}
	return "SUBTRACT"
}
