"""Rule packs: YAML files turned into validated rules."""
