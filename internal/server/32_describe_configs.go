package server

// DescribeConfigs (key 32), versions 0-4.
//
// Behaviour:
//   - Topics (resource type 2): every topic config the broker knows, with
//     the value in force. Source is DYNAMIC_TOPIC_CONFIG for an override,
//     STATIC_BROKER_CONFIG when the broker's default (log.segment.bytes, ...)
//     differs from the embedded one, DEFAULT_CONFIG otherwise. Topic configs
//     are not read-only. An unknown topic: UNKNOWN_TOPIC_OR_PARTITION; an
//     invalid name: INVALID_TOPIC_EXCEPTION.
//   - Brokers (type 4) named by this node's id: every broker setting (see
//     config.Broker.Settings), the topic defaults under their broker names
//     included, STATIC_BROKER_CONFIG or DEFAULT_CONFIG, all read-only (they
//     change only by restarting with a new config file). The empty name
//     means, in Kafka, the dynamic cluster-wide defaults: there are none, so
//     the list is empty. Another id: INVALID_REQUEST.
//   - ConfigNames filters by name; null or empty means all, names we do
//     not know are left out, as in Kafka.
//   - IncludeSynonyms (v1+) lists, in order of precedence, the override,
//     the broker's static setting and the default, each under the name it
//     is set by.
//   - Other resource types: INVALID_REQUEST.
//
// Version notes: v0 has IsDefault instead of Source; v1 adds Source and
// synonyms; v3 ConfigType and Documentation (KIP-569); v4 is flexible.
//
// Not done: Documentation is always null; a static setting written with the
// default's value is reported as DEFAULT_CONFIG (the broker keeps values,
// not where they came from).

import (
	"fmt"
	"slices"
	"strconv"

	"github.com/oncelog/oncelog/internal/broker"
	"github.com/oncelog/oncelog/internal/config"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

func init() { register(32, 0, 4, handleDescribeConfigs) }

// configEntry is one described config before it is cut to the version.
type configEntry struct {
	name      string
	value     *string
	source    kmsg.ConfigSource
	readOnly  bool
	sensitive bool
	typ       kmsg.ConfigType
	synonyms  []kmsg.DescribeConfigsResponseResourceConfigConfigSynonym
}

func handleDescribeConfigs(c *conn, kreq kmsg.Request) reply {
	req := kreq.(*kmsg.DescribeConfigsRequest)
	resp := req.ResponseKind().(*kmsg.DescribeConfigsResponse)
	b := c.s.b
	for _, rr := range req.Resources {
		sr := kmsg.NewDescribeConfigsResponseResource()
		sr.ResourceType, sr.ResourceName = rr.ResourceType, rr.ResourceName
		var entries []configEntry
		var perr *broker.Error
		switch rr.ResourceType {
		case kmsg.ConfigResourceTypeTopic:
			entries, perr = describeTopicConfigs(b, rr.ResourceName)
		case kmsg.ConfigResourceTypeBroker:
			entries, perr = describeBrokerConfigs(b, rr.ResourceName)
		default:
			perr = &broker.Error{Code: kerr.InvalidRequest, Message: fmt.Sprintf("configs of resource type %d cannot be described; only topics (2) and brokers (4)", rr.ResourceType)}
		}
		if perr != nil {
			sr.ErrorCode = perr.Code.Code
			sr.ErrorMessage = &perr.Message
			resp.Resources = append(resp.Resources, sr)
			continue
		}
		for _, e := range entries {
			if len(rr.ConfigNames) > 0 && !slices.Contains(rr.ConfigNames, e.name) {
				continue
			}
			sc := kmsg.NewDescribeConfigsResponseResourceConfig()
			sc.Name = e.name
			sc.Value = e.value
			sc.ReadOnly = e.readOnly
			sc.IsSensitive = e.sensitive
			sc.Source = e.source
			sc.IsDefault = e.source == kmsg.ConfigSourceDefaultConfig
			sc.ConfigType = e.typ
			if req.IncludeSynonyms {
				sc.ConfigSynonyms = e.synonyms
			}
			sr.Configs = append(sr.Configs, sc)
		}
		resp.Resources = append(resp.Resources, sr)
	}
	return now(resp)
}

func describeTopicConfigs(b *broker.Broker, name string) ([]configEntry, *broker.Error) {
	t := b.Topic(name)
	if t == nil {
		if e := broker.ValidateTopicName(name); e != nil {
			return nil, e
		}
		return nil, &broker.Error{Code: kerr.UnknownTopicOrPartition, Message: "topic " + name + " does not exist"}
	}
	embedded := config.Default().TopicDefaults
	out := make([]configEntry, 0, len(config.TopicKeys))
	for _, k := range config.TopicKeys {
		value := k.Get(&t.Config)
		brokerValue := k.Get(&b.Config.TopicDefaults)
		defValue := k.Get(&embedded)
		brokerName := config.TopicKeyBrokerName(k.Name)
		if brokerName == "" {
			brokerName = k.Name
		}
		e := configEntry{name: k.Name, value: &value, sensitive: k.Sensitive, typ: configType(config.TopicKeyType(k.Name))}
		syn := func(name, v string, src kmsg.ConfigSource) {
			s := kmsg.NewDescribeConfigsResponseResourceConfigConfigSynonym()
			s.Name, s.Value, s.Source = name, &v, src
			if k.Sensitive {
				s.Value = nil
			}
			e.synonyms = append(e.synonyms, s)
		}
		_, overridden := t.Overrides[k.Name]
		switch {
		case overridden:
			e.source = kmsg.ConfigSourceDynamicTopicConfig
		case brokerValue != defValue:
			e.source = kmsg.ConfigSourceStaticBrokerConfig
		default:
			e.source = kmsg.ConfigSourceDefaultConfig
		}
		if overridden {
			syn(k.Name, value, kmsg.ConfigSourceDynamicTopicConfig)
		}
		if brokerValue != defValue {
			syn(brokerName, brokerValue, kmsg.ConfigSourceStaticBrokerConfig)
		}
		syn(brokerName, defValue, kmsg.ConfigSourceDefaultConfig)
		if k.Sensitive {
			e.value = nil
		}
		out = append(out, e)
	}
	return out, nil
}

func describeBrokerConfigs(b *broker.Broker, name string) ([]configEntry, *broker.Error) {
	if name == "" {
		// Kafka: the dynamic cluster-wide defaults, of which we have none.
		return nil, nil
	}
	id, err := strconv.ParseInt(name, 10, 32)
	if err != nil {
		return nil, &broker.Error{Code: kerr.InvalidRequest, Message: fmt.Sprintf("broker id must be an integer, got %q", name)}
	}
	if int32(id) != b.Config.NodeID {
		return nil, &broker.Error{Code: kerr.InvalidRequest, Message: fmt.Sprintf("this is broker %d; ask for %d or the empty name, not %s", b.Config.NodeID, b.Config.NodeID, name)}
	}
	settings := b.Config.Settings()
	out := make([]configEntry, 0, len(settings))
	for _, s := range settings {
		e := configEntry{name: s.Name, value: s.Value, readOnly: true, typ: configType(s.Type)}
		syn := func(v *string, src kmsg.ConfigSource) {
			sy := kmsg.NewDescribeConfigsResponseResourceConfigConfigSynonym()
			sy.Name, sy.Value, sy.Source = s.Name, v, src
			e.synonyms = append(e.synonyms, sy)
		}
		if s.FromDefault() {
			e.source = kmsg.ConfigSourceDefaultConfig
		} else {
			e.source = kmsg.ConfigSourceStaticBrokerConfig
			syn(s.Value, kmsg.ConfigSourceStaticBrokerConfig)
		}
		syn(s.Default, kmsg.ConfigSourceDefaultConfig)
		out = append(out, e)
	}
	return out, nil
}

// configType maps Kafka's type name to the wire enum (UNKNOWN if empty).
func configType(name string) kmsg.ConfigType {
	t, err := kmsg.ParseConfigType(name)
	if err != nil {
		return kmsg.ConfigTypeUnknown
	}
	return t
}
