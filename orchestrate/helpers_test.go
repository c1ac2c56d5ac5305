package orchestrate

import "regexp"

func regexpMatch(re, v string) (bool, error) { return regexp.MatchString(re, v) }
