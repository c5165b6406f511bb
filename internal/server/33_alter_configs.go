package server

// AlterConfigs (key 33), versions 0-2.
//
// Behaviour:
//   - A topic resource's configs replace its whole override set: a key not
//     listed returns to the broker default. The new set is validated by
//     name and value (INVALID_CONFIG naming the key) and recorded in the
//     metadata log before the answer; it survives restarts.
//   - A config with a null value: INVALID_REQUEST, as Kafka answers. A key
//     listed twice: the last value wins, as in Kafka.
//   - A resource listed twice: INVALID_REQUEST for each copy ("each
//     resource must appear at most once", Kafka's rule).
//   - Broker resources: INVALID_REQUEST; broker settings are static and
//     change only through the config file and a restart. Other resource
//     types: INVALID_REQUEST.
//   - An unknown topic: UNKNOWN_TOPIC_OR_PARTITION; an invalid name:
//     INVALID_TOPIC_EXCEPTION.
//   - ValidateOnly checks everything and changes nothing.
//
// Version notes: v1 is the same as v0 (throttling after the response);
// v2 is flexible.
//
// Not done: alter-config policies (alter.config.policy.class.name).

import (
	"fmt"
	"strings"

	"github.com/oncelog/oncelog/internal/broker"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

func init() { register(33, 0, 2, handleAlterConfigs) }

func handleAlterConfigs(c *conn, kreq kmsg.Request) reply {
	req := kreq.(*kmsg.AlterConfigsRequest)
	resp := req.ResponseKind().(*kmsg.AlterConfigsResponse)
	b := c.s.b
	seen := map[configResource]int{}
	for _, rr := range req.Resources {
		seen[configResource{rr.ResourceType, rr.ResourceName}]++
	}
	for _, rr := range req.Resources {
		sr := kmsg.NewAlterConfigsResponseResource()
		sr.ResourceType, sr.ResourceName = rr.ResourceType, rr.ResourceName
		perr := func() *broker.Error {
			if seen[configResource{rr.ResourceType, rr.ResourceName}] > 1 {
				return errDuplicateResource
			}
			var nulls []string
			for _, cfg := range rr.Configs {
				if cfg.Value == nil {
					nulls = append(nulls, cfg.Name)
				}
			}
			if len(nulls) > 0 {
				return &broker.Error{Code: kerr.InvalidRequest, Message: "null value not supported for: " + strings.Join(nulls, ", ")}
			}
			if _, perr := alterableTopic(b, rr.ResourceType, rr.ResourceName); perr != nil {
				return perr
			}
			overrides := make(map[string]string, len(rr.Configs))
			for _, cfg := range rr.Configs {
				overrides[cfg.Name] = *cfg.Value
			}
			return b.SetTopicConfig(rr.ResourceName, overrides, req.ValidateOnly)
		}()
		if perr != nil {
			sr.ErrorCode = perr.Code.Code
			sr.ErrorMessage = &perr.Message
		}
		resp.Resources = append(resp.Resources, sr)
	}
	return now(resp)
}

// configResource identifies a resource in AlterConfigs and
// IncrementalAlterConfigs, for the duplicate check.
type configResource struct {
	typ  kmsg.ConfigResourceType
	name string
}

var errDuplicateResource = &broker.Error{Code: kerr.InvalidRequest, Message: "each resource must appear at most once in the request"}

// alterableTopic checks that a resource of an alter request is a topic
// that exists, and returns it.
func alterableTopic(b *broker.Broker, typ kmsg.ConfigResourceType, name string) (*broker.Topic, *broker.Error) {
	switch typ {
	case kmsg.ConfigResourceTypeTopic:
	case kmsg.ConfigResourceTypeBroker, kmsg.ConfigResourceTypeBrokerLogger:
		return nil, &broker.Error{Code: kerr.InvalidRequest, Message: "broker configs are static: set them in the broker's config file and restart it"}
	default:
		return nil, &broker.Error{Code: kerr.InvalidRequest, Message: fmt.Sprintf("configs of resource type %d cannot be altered; only topics (2)", typ)}
	}
	if e := broker.ValidateTopicName(name); e != nil {
		return nil, e
	}
	t := b.Topic(name)
	if t == nil {
		return nil, &broker.Error{Code: kerr.UnknownTopicOrPartition, Message: "topic " + name + " does not exist"}
	}
	return t, nil
}
