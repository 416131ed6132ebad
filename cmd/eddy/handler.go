package main

import (
	"github.com/eddyhq/eddy/features"
	"github.com/eddyhq/eddy/learner"
	"github.com/eddyhq/eddy/stream"
)

// engineHandler adapts a learner.Engine to the stream.Handler the consumer
// calls. It is wiring only: it converts types, nothing else.
type engineHandler struct {
	engine  *learner.Engine
	fields  []features.Field
	offsets []learner.Offset
}

func newEngineHandler(e *learner.Engine) *engineHandler { return &engineHandler{engine: e} }

func (h *engineHandler) NextOffsets(topic string) map[int]int64 { return h.engine.NextOffsets(topic) }

func (h *engineHandler) Handle(topic string, ev *stream.Event) error {
	h.fields = h.fields[:0]
	for i := range ev.Fields {
		f := &ev.Fields[i]
		h.fields = append(h.fields, features.Field{Name: f.Name, Kind: kindOf(f.Kind), Num: f.Num, Str: f.Str})
	}
	return h.engine.Process(topic, h.fields, ev.Label, ev.HasLabel)
}

func kindOf(k stream.FieldKind) features.Kind {
	switch k {
	case stream.KindString:
		return features.String
	case stream.KindBool:
		return features.Bool
	}
	return features.Number
}

func (h *engineHandler) Checkpoint(offsets []stream.Offset) error {
	h.offsets = h.offsets[:0]
	for _, o := range offsets {
		h.offsets = append(h.offsets, learner.Offset{
			TopicPartition: learner.TopicPartition{Topic: o.Topic, Partition: o.Partition},
			Next:           o.Next,
		})
	}
	return h.engine.Checkpoint(h.offsets)
}
