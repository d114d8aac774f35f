package tiering

import (
	"bytes"
	"encoding/csv"
	"errors"
	"fmt"
	"io"
	"regexp"
	"slices"
	"strings"
	"unicode"
	"unicode/utf8"

	"golang.org/x/text/encoding/simplifiedchinese"
	"golang.org/x/text/language"

	"concierge"
)

// Columns of the import CSV besides indicators. Indicator columns are
// BaseIndicators plus whatever the loaded schemes declare, which is how an
// operator's scheme adds a column without code.
var reservedColumns = []string{
	"customer_id", "month", "scheme", "cards", "private_banking",
	"rm_id", "rm_name", "rm_phone", "form_of_address", "language", "risk_flags",
}

// columnAliases accept the Chinese headers core-banking exports tend to use.
var columnAliases = map[string]string{
	"客户号": "customer_id", "客户编号": "customer_id",
	"月份": "month", "数据月份": "month",
	"分层体系":    "scheme",
	"月日均金融资产": "assets", "日均金融资产": "assets",
	"星点值":    "points",
	"月末贷款余额": "loan_balance", "贷款余额": "loan_balance",
	"近12个月信用卡消费": "card_spend_12m",
	"卡产品":        "cards",
	"私人银行协议":     "private_banking", "私行协议": "private_banking",
	"客户经理编号": "rm_id", "客户经理": "rm_name", "客户经理电话": "rm_phone",
	"称呼": "form_of_address", "语言": "language", "风险标识": "risk_flags",
}

// Codes of RowError, stable for tools that read the import report.
const (
	CodeMalformed       = "malformed"        // not parseable as CSV, or too many fields
	CodeUnknownColumn   = "unknown_column"   // header names a column nobody defines
	CodeDuplicateColumn = "duplicate_column" // header names a column twice
	CodeMissingColumn   = "missing_column"   // header lacks customer_id or month
	CodeMissingValue    = "missing_value"    // a required cell is empty
	CodeNonNumeric      = "non_numeric"      // an indicator cell is not a number
	CodeNegativeAmount  = "negative_amount"  // an amount, points or count below zero
	CodeBadValue        = "bad_value"        // any other invalid cell
	CodeDuplicateMonth  = "duplicate_month"  // the same customer and month twice in a file
	CodeUnknownScheme   = "unknown_scheme"   // the scheme cell names no loaded scheme
)

// RowError is one problem in an import file, located by the line the row
// starts on (line 1 is the header).
type RowError struct {
	Line   int    `json:"line"`
	Column string `json:"column,omitempty"`
	Code   string `json:"code"`
	Reason string `json:"reason"`
}

func (e RowError) Error() string {
	if e.Column != "" {
		return fmt.Sprintf("line %d: %s: %s", e.Line, e.Column, e.Reason)
	}
	return fmt.Sprintf("line %d: %s", e.Line, e.Reason)
}

// Encodings ParseCSV accepts by name; "" and "auto" detect.
const (
	EncodingAuto    = "auto"
	EncodingUTF8    = "utf-8"
	EncodingUTF8BOM = "utf-8-bom"
	EncodingGB18030 = "gb18030"
)

// CSVData is a parsed import file.
type CSVData struct {
	Encoding  string     // as detected or given
	Rows      int        // data rows read, good or bad
	Snapshots []Snapshot // the good rows, in file order
	Problems  []RowError // every problem, in line order
}

// ParseCSV decodes and validates a core-banking export (docs/tiering.md
// lists the columns). Every row is checked and every problem reported, so
// one run shows the operator everything to fix. Problems with the header
// make the whole file unusable and are returned as an EINVALID error along
// with the data listing them; problems with rows leave those rows out of
// Snapshots.
func (s *Schemes) ParseCSV(data []byte, encoding string) (*CSVData, error) {
	text, enc, err := decodeText(data, encoding)
	if err != nil {
		return nil, concierge.Errorf(concierge.EINVALID, "%w", err)
	}
	out := &CSVData{Encoding: enc}
	r := csv.NewReader(strings.NewReader(text))
	r.FieldsPerRecord = -1 // short and long rows are reported per row, not as a read error
	if first, _, _ := strings.Cut(text, "\n"); !strings.Contains(first, ",") && strings.Contains(first, "\t") {
		r.Comma = '\t'
	}
	header, err := r.Read()
	if errors.Is(err, io.EOF) {
		return out, concierge.Errorf(concierge.EINVALID, "empty file: want a header line")
	}
	if err != nil {
		return out, concierge.Errorf(concierge.EINVALID, "header: %w", err)
	}
	cols, problems := s.parseHeader(header)
	if len(problems) > 0 {
		out.Problems = problems
		return out, concierge.Errorf(concierge.EINVALID, "bad header: %v", problems[0])
	}

	seen := map[string]int{} // customer id + month -> first line
	for {
		rec, err := r.Read()
		if errors.Is(err, io.EOF) {
			break
		}
		var pe *csv.ParseError
		if errors.As(err, &pe) {
			out.Rows++
			out.Problems = append(out.Problems, RowError{Line: pe.StartLine, Code: CodeMalformed, Reason: pe.Err.Error()})
			continue
		}
		if err != nil {
			return out, concierge.Errorf(concierge.EINVALID, "read csv: %w", err)
		}
		if blank(rec) {
			continue // spreadsheets pad exports with empty rows
		}
		out.Rows++
		line, _ := r.FieldPos(0)
		snap, rowProblems := s.parseRow(line, cols, rec)
		if snap.CustomerID != "" && snap.Month != 0 {
			key := snap.CustomerID + "\x00" + snap.Month.String()
			if first, dup := seen[key]; dup {
				rowProblems = append(rowProblems, RowError{Line: line, Column: "month", Code: CodeDuplicateMonth,
					Reason: fmt.Sprintf("customer %s month %s already on line %d", snap.CustomerID, snap.Month, first)})
			} else {
				seen[key] = line
			}
		}
		if len(rowProblems) > 0 {
			out.Problems = append(out.Problems, rowProblems...)
			continue
		}
		out.Snapshots = append(out.Snapshots, snap)
	}
	return out, nil
}

// BadLines counts the distinct lines with problems.
func (d *CSVData) BadLines() int {
	n, last := 0, -1
	for _, p := range d.Problems {
		if p.Line != last {
			n, last = n+1, p.Line
		}
	}
	return n
}

func blank(rec []string) bool {
	for _, f := range rec {
		if strings.TrimSpace(f) != "" {
			return false
		}
	}
	return true
}

// decodeText returns data as UTF-8 text. Exports from Windows tools in China
// are GB18030 (a superset of GBK); Excel adds a BOM to UTF-8. Valid UTF-8
// without a BOM is taken as UTF-8: GB18030 text with Chinese characters is
// practically never valid UTF-8.
func decodeText(data []byte, encoding string) (string, string, error) {
	utf8BOM, gbBOM := []byte{0xEF, 0xBB, 0xBF}, []byte{0x84, 0x31, 0x95, 0x33}
	switch strings.ToLower(encoding) {
	case "", EncodingAuto:
		switch {
		case bytes.HasPrefix(data, utf8BOM):
			return checkUTF8(data[3:], EncodingUTF8BOM)
		case bytes.HasPrefix(data, []byte{0xFF, 0xFE}) || bytes.HasPrefix(data, []byte{0xFE, 0xFF}):
			return "", "", errors.New("file is UTF-16: export it as UTF-8 or GB18030 CSV")
		case bytes.HasPrefix(data, gbBOM):
			return decodeGB18030(data[4:])
		case utf8.Valid(data):
			return string(data), EncodingUTF8, nil
		}
		return decodeGB18030(data)
	case EncodingUTF8, "utf8":
		if bytes.HasPrefix(data, utf8BOM) {
			return checkUTF8(data[3:], EncodingUTF8BOM)
		}
		return checkUTF8(data, EncodingUTF8)
	case EncodingGB18030, "gbk", "gb2312":
		return decodeGB18030(bytes.TrimPrefix(data, gbBOM))
	}
	return "", "", fmt.Errorf("encoding %q: want auto, utf-8 or gb18030", encoding)
}

func checkUTF8(data []byte, enc string) (string, string, error) {
	if !utf8.Valid(data) {
		line := 1 + bytes.Count(data[:firstInvalidUTF8(data)], []byte{'\n'})
		return "", "", fmt.Errorf("line %d: not valid UTF-8 (try --encoding gb18030)", line)
	}
	return string(data), enc, nil
}

func firstInvalidUTF8(b []byte) int {
	for i := 0; i < len(b); {
		r, n := utf8.DecodeRune(b[i:])
		if r == utf8.RuneError && n <= 1 {
			return i
		}
		i += n
	}
	return len(b)
}

func decodeGB18030(data []byte) (string, string, error) {
	out, err := simplifiedchinese.GB18030.NewDecoder().Bytes(data)
	if err != nil {
		return "", "", fmt.Errorf("not valid UTF-8 or GB18030: %w", err)
	}
	if i := bytes.IndexRune(out, utf8.RuneError); i >= 0 {
		line := 1 + bytes.Count(out[:i], []byte{'\n'})
		return "", "", fmt.Errorf("line %d: not valid UTF-8 or GB18030", line)
	}
	return string(out), EncodingGB18030, nil
}

// column is one header field resolved.
type column struct {
	name      string
	indicator *Indicator // nil for reserved columns
}

func (s *Schemes) parseHeader(header []string) ([]column, []RowError) {
	var cols []column
	var problems []RowError
	seen := map[string]bool{}
	for _, h := range header {
		name := strings.TrimSpace(strings.TrimPrefix(h, "\uFEFF"))
		if alias, ok := columnAliases[name]; ok {
			name = alias
		}
		name = strings.ToLower(name)
		c := column{name: name}
		if in, ok := s.indicators[name]; ok {
			c.indicator = &in
		} else if !slices.Contains(reservedColumns, name) {
			problems = append(problems, RowError{Line: 1, Column: h, Code: CodeUnknownColumn,
				Reason: fmt.Sprintf("unknown column %q (known: %s)", h, strings.Join(s.columnNames(), ", "))})
		}
		if seen[name] {
			problems = append(problems, RowError{Line: 1, Column: h, Code: CodeDuplicateColumn, Reason: fmt.Sprintf("column %q appears twice", name)})
		}
		seen[name] = true
		cols = append(cols, c)
	}
	for _, req := range []string{"customer_id", "month"} {
		if !seen[req] {
			problems = append(problems, RowError{Line: 1, Column: req, Code: CodeMissingColumn, Reason: fmt.Sprintf("column %q is required", req)})
		}
	}
	return cols, problems
}

func (s *Schemes) columnNames() []string {
	names := slices.Clone(reservedColumns)
	for _, in := range s.Indicators() {
		names = append(names, in.Name)
	}
	return names
}

var (
	reasonRE        = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_.-]{0,31}$`)
	riskKindAliases = map[string]RiskKind{
		"credit": RiskCredit, "信用": RiskCredit,
		"fraud": RiskFraud, "欺诈": RiskFraud,
		"aml": RiskAML, "反洗钱": RiskAML,
	}
	boolValues = map[string]bool{
		"1": true, "true": true, "yes": true, "y": true, "是": true,
		"0": false, "false": false, "no": false, "n": false, "否": false,
	}
)

const maxTextLen = 64

func (s *Schemes) parseRow(line int, cols []column, rec []string) (Snapshot, []RowError) {
	var snap Snapshot
	var problems []RowError
	bad := func(col, code, format string, args ...any) {
		problems = append(problems, RowError{Line: line, Column: col, Code: code, Reason: fmt.Sprintf(format, args...)})
	}
	if len(rec) > len(cols) && !blank(rec[len(cols):]) {
		bad("", CodeMalformed, "%d fields but the header has %d", len(rec), len(cols))
	}
	for i, c := range cols {
		v := ""
		if i < len(rec) {
			v = strings.TrimSpace(rec[i])
		}
		if c.indicator != nil {
			in := c.indicator
			if v == "" {
				bad(c.name, CodeMissingValue, "missing value (write 0 for none)")
				continue
			}
			d, err := ParseDecimal(v)
			if err != nil {
				bad(c.name, CodeNonNumeric, "%q: %v", v, err)
				continue
			}
			switch code, reason := in.Check(d, v); {
			case code != "":
				bad(c.name, code, "%s", reason)
			default:
				if snap.Indicators == nil {
					snap.Indicators = map[string]Decimal{}
				}
				snap.Indicators[in.Name] = d
			}
			continue
		}
		switch c.name {
		case "customer_id":
			switch {
			case v == "":
				bad(c.name, CodeMissingValue, "missing value")
			case !cleanText(v):
				bad(c.name, CodeBadValue, "customer id must be 1 to %d printable characters", maxTextLen)
			default:
				snap.CustomerID = v
			}
		case "month":
			if v == "" {
				bad(c.name, CodeMissingValue, "missing value")
				continue
			}
			m, err := ParseMonth(v)
			if err != nil {
				bad(c.name, CodeBadValue, "%v", err)
				continue
			}
			snap.Month = m
		case "scheme":
			if v != "" {
				if _, ok := s.byName[v]; !ok {
					bad(c.name, CodeUnknownScheme, "unknown scheme %q (known: %s)", v, strings.Join(s.Names(), ", "))
					continue
				}
			}
			snap.Scheme = v
		case "private_banking":
			if v == "" {
				bad(c.name, CodeMissingValue, "missing value (write 0 or 1)")
				continue
			}
			b, ok := boolValues[strings.ToLower(v)]
			if !ok {
				bad(c.name, CodeBadValue, "%q is not 1/0, true/false, yes/no or 是/否", v)
				continue
			}
			snap.PrivateBanking = b
		case "cards":
			for _, card := range splitList(v) {
				card = strings.ToLower(card)
				if !cardRE.MatchString(card) {
					bad(c.name, CodeBadValue, "card product %q must be letters, digits, '_' or '-'", card)
					continue
				}
				snap.Cards = append(snap.Cards, card)
			}
			slices.Sort(snap.Cards)
			snap.Cards = slices.Compact(snap.Cards)
		case "risk_flags":
			for _, f := range splitList(v) {
				kind, reason, ok := strings.Cut(strings.ReplaceAll(f, "：", ":"), ":")
				k, known := riskKindAliases[strings.ToLower(strings.TrimSpace(kind))]
				reason = strings.TrimSpace(reason)
				switch {
				case !ok || !known:
					bad(c.name, CodeBadValue, "risk flag %q: want credit:CODE, fraud:CODE or aml:CODE", f)
				case !reasonRE.MatchString(reason):
					bad(c.name, CodeBadValue, "risk flag %q: reason code must be 1 to 32 letters, digits, '_', '.' or '-'", f)
				default:
					snap.RiskFlags = append(snap.RiskFlags, RiskFlag{Kind: k, Reason: reason})
				}
			}
			slices.SortFunc(snap.RiskFlags, func(a, b RiskFlag) int { return strings.Compare(a.String(), b.String()) })
			snap.RiskFlags = slices.Compact(snap.RiskFlags)
		case "language":
			if v == "" {
				continue
			}
			tag, err := language.Parse(v)
			if err != nil {
				bad(c.name, CodeBadValue, "%q is not a language tag such as zh-CN or en", v)
				continue
			}
			snap.Language = tag.String()
		case "rm_id", "rm_name", "rm_phone", "form_of_address":
			if v != "" && !cleanText(v) {
				bad(c.name, CodeBadValue, "must be at most %d printable characters", maxTextLen)
				continue
			}
			switch c.name {
			case "rm_id":
				snap.RelationshipManager.ID = v
			case "rm_name":
				snap.RelationshipManager.Name = v
			case "rm_phone":
				snap.RelationshipManager.Phone = v
			default:
				snap.FormOfAddress = v
			}
		}
	}
	return snap, problems
}

func splitList(v string) []string {
	var out []string
	for _, f := range strings.FieldsFunc(v, func(r rune) bool { return r == ';' || r == '|' || r == '；' }) {
		if f = strings.TrimSpace(f); f != "" {
			out = append(out, f)
		}
	}
	return out
}

func cleanText(s string) bool {
	if utf8.RuneCountInString(s) > maxTextLen {
		return false
	}
	for _, r := range s {
		if !unicode.IsPrint(r) {
			return false
		}
	}
	return true
}
