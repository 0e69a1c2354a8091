/// The JSON Schema (draft 2020-12) of policy-directory files, for editors and CI validators.
/// `consentctl policy schema` prints it; `schema/consentd-v1.schema.json` is the same text.
public enum PolicySchema {
    /// The schema text.
    public static let json = #"""
{
  "$schema": "https://json-schema.org/draft/2020-12/schema",
  "$id": "https://consentd.dev/schema/consentd-v1.schema.json",
  "title": "consentd policy file (apiVersion consentd/v1)",
  "description": "A Taxonomy, a Policy, or a PolicyTest suite (files named *_test.yaml).",
  "type": "object",
  "required": ["apiVersion", "kind"],
  "properties": {
    "apiVersion": {"const": "consentd/v1"},
    "kind": {"enum": ["Taxonomy", "Policy", "PolicyTest"]}
  },
  "oneOf": [
    {"$ref": "#/$defs/Taxonomy"},
    {"$ref": "#/$defs/Policy"},
    {"$ref": "#/$defs/PolicyTest"}
  ],
  "$defs": {
    "key": {
      "type": "string",
      "pattern": "^[a-z0-9_-]+(\\.[a-z0-9_-]+)*$",
      "description": "A dotted taxonomy key; it covers itself and every descendant."
    },
    "keyList": {
      "oneOf": [
        {"$ref": "#/$defs/key"},
        {"type": "array", "minItems": 1, "items": {"$ref": "#/$defs/key"}}
      ]
    },
    "jurisdiction": {
      "type": "string",
      "description": "A jurisdiction group name, an ISO 3166-1 alpha-2 code (DE), an ISO 3166-2 code (US-CA) or a pattern (US-*)."
    },
    "duration": {
      "type": "string",
      "pattern": "^[1-9][0-9]*[smhd]$",
      "description": "A whole number of seconds (s), minutes (m), hours (h) or days (d), e.g. 395d."
    },
    "time": {
      "type": "string",
      "description": "An RFC 3339 instant, e.g. 2026-06-01T00:00:00Z, or a date (midnight UTC)."
    },
    "taxonomyNode": {
      "type": ["object", "null"],
      "additionalProperties": false,
      "properties": {
        "description": {"type": "string"},
        "sale_or_sharing": {"type": "boolean", "description": "GPC and US Privacy opt-outs of sale apply to this purpose (unless: {sale_opt_out: true})."},
        "tcf_purposes": {"type": "array", "items": {"type": "integer", "minimum": 1, "maximum": 11}},
        "sensitive": {"type": "boolean"},
        "tcf_special_feature": {"type": "integer", "minimum": 1, "maximum": 2},
        "labels": {"type": "object", "additionalProperties": {"type": "string"}}
      }
    },
    "Taxonomy": {
      "type": "object",
      "additionalProperties": false,
      "properties": {
        "apiVersion": {"const": "consentd/v1"},
        "kind": {"const": "Taxonomy"},
        "description": {"type": "string"},
        "purposes": {
          "type": "object",
          "description": "Dotted purpose keys; a key's parent must be declared too.",
          "propertyNames": {"$ref": "#/$defs/key"},
          "additionalProperties": {"$ref": "#/$defs/taxonomyNode"}
        },
        "data_categories": {
          "type": "object",
          "description": "Dotted data-category keys; a key's parent must be declared too.",
          "propertyNames": {"$ref": "#/$defs/key"},
          "additionalProperties": {"$ref": "#/$defs/taxonomyNode"}
        },
        "jurisdictions": {
          "type": "object",
          "description": "Named groups of ISO 3166 codes and CC-* patterns.",
          "additionalProperties": {"type": "array", "items": {"type": "string", "pattern": "^[A-Z]{2}(-([A-Z0-9]{1,3}|\\*))?$"}}
        }
      }
    },
    "unless": {
      "type": "object",
      "additionalProperties": false,
      "minProperties": 1,
      "description": "All stated conditions must hold: they lift a prohibition, or defeat a permission (OPTED_OUT_BY_SIGNAL).",
      "properties": {
        "consent": {"const": "opt_in", "description": "Prohibitions only: lifted when the effective consent record is a grant."},
        "gpc": {"type": "boolean"},
        "usp_opt_out": {"type": "boolean"},
        "sale_opt_out": {"type": "boolean", "description": "GPC or a US Privacy opt-out, for a sale_or_sharing purpose."}
      }
    },
    "obligation": {
      "oneOf": [
        {"type": "string"},
        {"type": "object", "minProperties": 1, "maxProperties": 1, "additionalProperties": {"type": "string"},
         "properties": {"retention": {"$ref": "#/$defs/duration"}}}
      ]
    },
    "rule": {
      "type": "object",
      "additionalProperties": false,
      "required": ["id", "effect"],
      "properties": {
        "id": {"type": "string", "description": "Unique in the policy set."},
        "description": {"type": "string"},
        "effect": {"enum": ["allow", "deny"], "description": "allow: a permission; deny: a prohibition (wins over every permission)."},
        "purposes": {"$ref": "#/$defs/keyList", "description": "Absent: every purpose."},
        "data": {"$ref": "#/$defs/keyList", "description": "Absent: every data category."},
        "jurisdictions": {
          "oneOf": [{"$ref": "#/$defs/jurisdiction"}, {"type": "array", "minItems": 1, "items": {"$ref": "#/$defs/jurisdiction"}}],
          "description": "Absent: every request, including one with no jurisdiction."
        },
        "channels": {"oneOf": [{"type": "string"}, {"type": "array", "minItems": 1, "items": {"type": "string"}}]},
        "consent": {"enum": ["opt_in", "opt_out"]},
        "basis": {"enum": ["contract", "legal_obligation", "legitimate_interest", "vital_interest", "public_task"]},
        "max_age": {"$ref": "#/$defs/duration"},
        "min_notice_version": {"type": "integer", "minimum": 1},
        "unless": {"$ref": "#/$defs/unless"},
        "obligations": {"type": "array", "items": {"$ref": "#/$defs/obligation"}}
      },
      "if": {"properties": {"effect": {"const": "allow"}}},
      "then": {"oneOf": [{"required": ["consent"], "not": {"required": ["basis"]}}, {"required": ["basis"], "not": {"required": ["consent"]}}]},
      "else": {"not": {"anyOf": [{"required": ["consent"]}, {"required": ["basis"]}, {"required": ["max_age"]}, {"required": ["min_notice_version"]}]}}
    },
    "Policy": {
      "type": "object",
      "additionalProperties": false,
      "properties": {
        "apiVersion": {"const": "consentd/v1"},
        "kind": {"const": "Policy"},
        "name": {"type": "string"},
        "description": {"type": "string"},
        "default": {"enum": ["allow", "deny"], "description": "At most one file in a set may state it; absent everywhere means deny."},
        "rules": {"type": "array", "items": {"$ref": "#/$defs/rule"}}
      }
    },
    "record": {
      "type": "object",
      "additionalProperties": false,
      "required": ["subject", "purpose", "choice", "at"],
      "properties": {
        "subject": {"type": "string", "minLength": 1},
        "purpose": {"$ref": "#/$defs/key"},
        "data": {"$ref": "#/$defs/key"},
        "choice": {"enum": ["grant", "deny"]},
        "at": {"$ref": "#/$defs/time"},
        "expires": {"$ref": "#/$defs/time"},
        "basis": {"enum": ["consent", "contract", "legal_obligation", "legitimate_interest", "vital_interest", "public_task"]},
        "source": {"type": "string"},
        "notice_version": {"type": "integer", "minimum": 0},
        "jurisdiction": {"type": "string"},
        "evidence": {"type": "string"},
        "sequence": {"type": "integer", "minimum": 1}
      }
    },
    "PolicyTest": {
      "type": "object",
      "additionalProperties": false,
      "required": ["now"],
      "properties": {
        "apiVersion": {"const": "consentd/v1"},
        "kind": {"const": "PolicyTest"},
        "name": {"type": "string"},
        "description": {"type": "string"},
        "now": {"$ref": "#/$defs/time"},
        "consent": {"type": "array", "items": {"$ref": "#/$defs/record"}},
        "cases": {
          "type": "array",
          "items": {
            "type": "object",
            "additionalProperties": false,
            "required": ["request", "expect"],
            "properties": {
              "name": {"type": "string"},
              "request": {
                "type": "object",
                "additionalProperties": false,
                "required": ["subject", "purpose", "data"],
                "properties": {
                  "subject": {"type": "string"},
                  "purpose": {"type": "string"},
                  "data": {"type": "string"},
                  "jurisdiction": {"type": "string"},
                  "gpc": {"type": "boolean"},
                  "usp_opt_out": {"type": "boolean"},
                  "channel": {"type": "string"},
                  "at": {"$ref": "#/$defs/time"}
                }
              },
              "expect": {
                "type": "object",
                "additionalProperties": false,
                "required": ["decision"],
                "properties": {
                  "decision": {"enum": ["allow", "deny"]},
                  "reason": {"enum": ["CONSENT_GRANTED", "NOT_OPTED_OUT", "LEGAL_BASIS", "PROHIBITED", "NO_CONSENT", "CONSENT_DENIED", "CONSENT_EXPIRED", "CONSENT_STALE", "OPTED_OUT_BY_SIGNAL", "NO_MATCHING_RULE", "UNKNOWN_PURPOSE", "UNKNOWN_DATA_CATEGORY", "INVALID_REQUEST"]},
                  "rule": {"type": "string"},
                  "obligations": {"type": "array", "items": {"type": "string"}}
                }
              }
            }
          }
        }
      }
    }
  }
}

"""#
}
