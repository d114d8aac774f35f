package tiering

import (
	"errors"
	"fmt"
	"strconv"
	"strings"

	"gopkg.in/yaml.v3"
)

// Decimal is a fixed-point number with four decimal places, used for every
// indicator, threshold, weight and score. Thresholds are compared exactly:
// floats would put 1999.99 star points on the wrong side of 2000 often enough
// to matter to a customer.
type Decimal int64

// DecimalPlaces is the number of fractional digits a Decimal keeps.
const DecimalPlaces = 4

const decimalScale = 10000

// Errors of ParseDecimal, told apart by callers that report them per CSV cell.
var (
	ErrNotNumber  = errors.New("not a number")
	ErrTooPrecise = fmt.Errorf("more than %d decimal places", DecimalPlaces)
	ErrOutOfRange = errors.New("number out of range")
)

// maxDecimalUnits bounds the integer part: 900 trillion keeps every sum of a
// few values and every scaled product of a score within int64.
const maxDecimalUnits = 900_000_000_000_000

// DecimalFromInt returns n as a Decimal.
func DecimalFromInt(n int64) Decimal { return Decimal(n * decimalScale) }

// ParseDecimal parses an optionally negative decimal such as "1999.99".
// Exponents, thousands separators and currency signs are refused so that an
// export in an unexpected format fails loudly instead of importing wrong values.
func ParseDecimal(s string) (Decimal, error) {
	neg := false
	if strings.HasPrefix(s, "-") {
		neg, s = true, s[1:]
	}
	intPart, frac, hasDot := strings.Cut(s, ".")
	if intPart == "" || (hasDot && frac == "") || !allDigits(intPart) || !allDigits(frac) {
		return 0, ErrNotNumber
	}
	if len(frac) > DecimalPlaces {
		return 0, ErrTooPrecise
	}
	if len(intPart) > 15 {
		return 0, ErrOutOfRange
	}
	n, err := strconv.ParseInt(intPart, 10, 64)
	if err != nil || n > maxDecimalUnits {
		return 0, ErrOutOfRange
	}
	v := n * decimalScale
	for i := 0; i < DecimalPlaces; i++ {
		d := int64(0)
		if i < len(frac) {
			d = int64(frac[i] - '0')
		}
		v += d * pow10(DecimalPlaces-1-i)
	}
	if neg {
		v = -v
	}
	return Decimal(v), nil
}

func pow10(n int) int64 {
	p := int64(1)
	for ; n > 0; n-- {
		p *= 10
	}
	return p
}

func allDigits(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}

// String formats d without trailing zeros: "2000", "1999.99", "-0.5".
func (d Decimal) String() string {
	v := int64(d)
	sign := ""
	if v < 0 {
		sign, v = "-", -v
	}
	i, f := v/decimalScale, v%decimalScale
	if f == 0 {
		return sign + strconv.FormatInt(i, 10)
	}
	fs := strings.TrimRight(fmt.Sprintf("%0*d", DecimalPlaces, f), "0")
	return sign + strconv.FormatInt(i, 10) + "." + fs
}

// MarshalJSON writes d as a JSON number with its exact digits.
func (d Decimal) MarshalJSON() ([]byte, error) { return []byte(d.String()), nil }

// UnmarshalJSON accepts a JSON number or a string holding one.
func (d *Decimal) UnmarshalJSON(b []byte) error {
	s := strings.Trim(string(b), `"`)
	v, err := ParseDecimal(s)
	if err != nil {
		return fmt.Errorf("decimal %q: %w", s, err)
	}
	*d = v
	return nil
}

// UnmarshalYAML reads a scalar such as 2000, 0.25 or 6_000_000; underscores
// are allowed because long thresholds are unreadable without them.
func (d *Decimal) UnmarshalYAML(n *yaml.Node) error {
	if n.Kind != yaml.ScalarNode {
		return lineErrorf(n.Line, "expected a number")
	}
	v, err := ParseDecimal(strings.ReplaceAll(n.Value, "_", ""))
	if err != nil {
		return lineErrorf(n.Line, "%q: %v", n.Value, err)
	}
	*d = v
	return nil
}

// mulDecimal multiplies two Decimals rounding half away from zero. Scheme
// validation keeps weights within ±1,000 and band scores within ±1,000,000,
// so the intermediate product (at most 1e17) fits in int64.
func mulDecimal(a, b Decimal) Decimal {
	p := int64(a) * int64(b)
	q, r := p/decimalScale, p%decimalScale
	if r >= decimalScale/2 {
		q++
	} else if r <= -decimalScale/2 {
		q--
	}
	return Decimal(q)
}
