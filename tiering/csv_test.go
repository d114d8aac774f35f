package tiering

import (
	"slices"
	"strings"
	"testing"

	"golang.org/x/text/encoding/simplifiedchinese"

	"concierge"
)

const csvHeader = "customer_id,month,scheme,assets,points,loan_balance,card_spend_12m,cards,private_banking,rm_id,rm_name,rm_phone,form_of_address,language,risk_flags\n"

func TestParseCSVGoodRow(t *testing.T) {
	s := mustSchemes(t)
	data := csvHeader +
		`C1,2024-06,icbc-stars,250000.50,2500,0,120000,credit_gold|WEALTH_GOLD; credit_gold,0,E1024,李经理,138-0000-0000,李先生,zh-cn,fraud:F12;aml:A3` + "\n" +
		"C2,202406,,0,0,0,0,,是,,,,,,\n"
	got, err := s.ParseCSV([]byte(data), "")
	if err != nil {
		t.Fatal(err)
	}
	if len(got.Problems) != 0 || got.Rows != 2 || len(got.Snapshots) != 2 || got.Encoding != EncodingUTF8 {
		t.Fatalf("parsed = %+v", got)
	}
	c1 := got.Snapshots[0]
	want := Snapshot{
		CustomerID: "C1", Month: NewMonth(2024, 6),
		Facts: Facts{
			Indicators: map[string]Decimal{"assets": 2_500_005_000, "points": 25_000_000, "loan_balance": 0, "card_spend_12m": 1_200_000_000},
			Cards:      []string{"credit_gold", "wealth_gold"},
		},
		Attributes: Attributes{
			Scheme:              "icbc-stars",
			RelationshipManager: RelationshipManager{ID: "E1024", Name: "李经理", Phone: "138-0000-0000"},
			FormOfAddress:       "李先生",
			Language:            "zh-CN",
			RiskFlags:           []RiskFlag{{RiskAML, "A3"}, {RiskFraud, "F12"}},
		},
	}
	if !c1.SameData(want) {
		t.Fatalf("C1 = %+v\nwant %+v", c1, want)
	}
	if c2 := got.Snapshots[1]; !c2.PrivateBanking || c2.Scheme != "" || c2.Month.String() != "2024-06" || c2.Cards != nil {
		t.Fatalf("C2 = %+v", c2)
	}
}

// TestParseCSVBadRows: each kind of bad row is reported with its line and
// column, and only that row is left out.
func TestParseCSVBadRows(t *testing.T) {
	const good = "G1,2024-01,,1,1,1,1,,0,,,,,,\n"
	tests := []struct {
		name   string
		row    string // line 3, after the header and a good row
		column string
		code   string
		reason string
	}{
		{"missing value", "C1,2024-06,,100,,0,0,,0,,,,,,", "points", CodeMissingValue, "missing value"},
		{"missing customer", ",2024-06,,100,1,0,0,,0,,,,,,", "customer_id", CodeMissingValue, "missing value"},
		{"missing month", "C1,,,100,1,0,0,,0,,,,,,", "month", CodeMissingValue, "missing value"},
		{"missing private banking", "C1,2024-06,,100,1,0,0,,,,,,,,", "private_banking", CodeMissingValue, "write 0 or 1"},
		{"short row", "C1,2024-06,,100", "points", CodeMissingValue, "missing value"},
		{"extra fields", "C1,2024-06,,100,1,0,0,,0,,,,,,,surplus", "", CodeMalformed, "16 fields but the header has 15"},
		{"non-numeric", "C1,2024-06,,lots,1,0,0,,0,,,,,,", "assets", CodeNonNumeric, "not a number"},
		{"thousands separator", `C1,2024-06,,"1,000",1,0,0,,0,,,,,,`, "assets", CodeNonNumeric, "not a number"},
		{"exponent", "C1,2024-06,,1e6,1,0,0,,0,,,,,,", "assets", CodeNonNumeric, "not a number"},
		{"too precise", "C1,2024-06,,1.23456,1,0,0,,0,,,,,,", "assets", CodeNonNumeric, "decimal places"},
		{"negative amount", "C1,2024-06,,-0.01,1,0,0,,0,,,,,,", "assets", CodeNegativeAmount, "must not be negative"},
		{"negative loan", "C1,2024-06,,1,1,-500,0,,0,,,,,,", "loan_balance", CodeNegativeAmount, "must not be negative"},
		{"negative points", "C1,2024-06,,1,-1,0,0,,0,,,,,,", "points", CodeNegativeAmount, "must not be negative"},
		{"duplicate month", "G1,202401,,2,2,2,2,,0,,,,,,", "month", CodeDuplicateMonth, "already on line 2"},
		{"unknown scheme", "C1,2024-06,abc-stars,1,1,0,0,,0,,,,,,", "scheme", CodeUnknownScheme, `unknown scheme "abc-stars"`},
		{"bad month", "C1,2024-13,,1,1,0,0,,0,,,,,,", "month", CodeBadValue, "want YYYY-MM"},
		{"bad yes/no", "C1,2024-06,,1,1,0,0,,maybe,,,,,,", "private_banking", CodeBadValue, "is not 1/0"},
		{"risk flag without reason", "C1,2024-06,,1,1,0,0,,0,,,,,,fraud", "risk_flags", CodeBadValue, "want credit:CODE"},
		{"unknown risk kind", "C1,2024-06,,1,1,0,0,,0,,,,,,theft:T1", "risk_flags", CodeBadValue, "want credit:CODE"},
		{"risk reason free text", "C1,2024-06,,1,1,0,0,,0,,,,,,aml:suspicious wire transfers", "risk_flags", CodeBadValue, "reason code"},
		{"bad language", "C1,2024-06,,1,1,0,0,,0,,,,,not a language,", "language", CodeBadValue, "language tag"},
		{"bad card", "C1,2024-06,,1,1,0,0,gold card!,0,,,,,,", "cards", CodeBadValue, "card product"},
		{"control character", "C1,2024-06,,1,1,0,0,,0,,,,\"a\x07b\",,", "form_of_address", CodeBadValue, "printable"},
		{"unbalanced quote", `C1,2024-06,,"1,1,0,0,,0,,,,,,`, "", CodeMalformed, "quote"},
	}
	s := mustSchemes(t)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			data := csvHeader + good + tt.row + "\n" + "G2,2024-01,,1,1,1,1,,0,,,,,,\n"
			got, err := s.ParseCSV([]byte(data), "")
			if err != nil {
				t.Fatal(err)
			}
			if len(got.Problems) == 0 {
				t.Fatalf("no problem reported; snapshots %+v", got.Snapshots)
			}
			p := got.Problems[0]
			if p.Line != 3 || p.Column != tt.column || p.Code != tt.code || !strings.Contains(p.Reason, tt.reason) {
				t.Fatalf("problem = %+v, want line 3 %s %s %q", p, tt.column, tt.code, tt.reason)
			}
			if tt.code == CodeMalformed && tt.reason == "quote" {
				return // the quote swallows the rest of the file
			}
			var ids []string
			for _, sn := range got.Snapshots {
				ids = append(ids, sn.CustomerID)
			}
			if strings.Join(ids, ",") != "G1,G2" {
				t.Fatalf("kept %v, want the good rows G1,G2", ids)
			}
		})
	}
}

func TestParseCSVIndicatorUnits(t *testing.T) {
	s := mustSchemes(t)
	data := "customer_id,month,scheme,txn_count,income_growth,credit_rating\n" +
		"C1,2024-01,composite-score,12,-5.5,3\n" +
		"C2,2024-01,composite-score,1.5,0,3\n" +
		"C3,2024-01,composite-score,-1,0,3\n"
	got, err := s.ParseCSV([]byte(data), "")
	if err != nil {
		t.Fatal(err)
	}
	if len(got.Snapshots) != 1 || got.Snapshots[0].Indicators["income_growth"].String() != "-5.5" {
		t.Fatalf("snapshots = %+v", got.Snapshots)
	}
	codes := []string{}
	for _, p := range got.Problems {
		codes = append(codes, p.Code+"@"+p.Column)
	}
	if strings.Join(codes, " ") != "bad_value@txn_count negative_amount@txn_count" {
		t.Fatalf("problems = %v", codes)
	}
}

func TestParseCSVEveryProblemReported(t *testing.T) {
	s := mustSchemes(t)
	data := csvHeader +
		"C1,2024-01,,x,y,0,0,,0,,,,,,\n" + // two problems on one line
		"\"C\n2\",2024-01,,1,1,1,1,,0,,,,,,\n" + // a quoted newline: the next row starts on line 5
		"C3,2024-01,,-1,1,1,1,,0,,,,,,\n"
	got, err := s.ParseCSV([]byte(data), "")
	if err != nil {
		t.Fatal(err)
	}
	var lines []int
	for _, p := range got.Problems {
		lines = append(lines, p.Line)
	}
	if !slices.Equal(lines, []int{2, 2, 3, 5}) || got.BadLines() != 3 || got.Rows != 3 {
		t.Fatalf("problem lines = %v (bad %d, rows %d): %+v", lines, got.BadLines(), got.Rows, got.Problems)
	}
}

func TestParseCSVHeader(t *testing.T) {
	tests := []struct {
		name, header, code string
	}{
		{"unknown column", "customer_id,month,asets\n", CodeUnknownColumn},
		{"duplicate column", "customer_id,month,assets,ASSETS\n", CodeDuplicateColumn},
		{"duplicate through alias", "customer_id,月份,month\n", CodeDuplicateColumn},
		{"no customer id", "month,assets\n", CodeMissingColumn},
		{"no month", "customer_id,assets\n", CodeMissingColumn},
	}
	s := mustSchemes(t)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := s.ParseCSV([]byte(tt.header+"C1,2024-01,1,1\n"), "")
			if concierge.ErrorCode(err) != concierge.EINVALID {
				t.Fatalf("err = %v", err)
			}
			if len(got.Problems) == 0 || got.Problems[0].Code != tt.code || got.Problems[0].Line != 1 {
				t.Fatalf("problems = %+v", got.Problems)
			}
		})
	}
	if _, err := s.ParseCSV(nil, ""); concierge.ErrorCode(err) != concierge.EINVALID {
		t.Fatalf("empty file err = %v", err)
	}
}

func TestParseCSVEncodings(t *testing.T) {
	s := mustSchemes(t)
	// A typical export from a Windows core-banking tool: Chinese headers in GB18030.
	text := "客户号,月份,星点值,卡产品,私行协议,客户经理,称呼,风险标识\r\n" +
		"C1,2024-06,2000,credit_gold,否,李经理,李先生,反洗钱:A3\r\n"
	gb, err := simplifiedchinese.GB18030.NewEncoder().Bytes([]byte(text))
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name     string
		data     []byte
		encoding string
		want     string
		errText  string
	}{
		{"gb18030 detected", gb, "", EncodingGB18030, ""},
		{"gb18030 named", gb, "gb18030", EncodingGB18030, ""},
		{"gbk alias", gb, "GBK", EncodingGB18030, ""},
		{"utf-8", []byte(text), "", EncodingUTF8, ""},
		{"utf-8 bom", append([]byte{0xEF, 0xBB, 0xBF}, text...), "", EncodingUTF8BOM, ""},
		{"utf-8 bom named", append([]byte{0xEF, 0xBB, 0xBF}, text...), "utf-8", EncodingUTF8BOM, ""},
		{"gb18030 forced as utf-8", gb, "utf-8", "", "line 1: not valid UTF-8"},
		{"utf-16", []byte{0xFF, 0xFE, 'a', 0}, "", "", "UTF-16"},
		{"unknown encoding", []byte(text), "latin1", "", `encoding "latin1"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := s.ParseCSV(tt.data, tt.encoding)
			if tt.errText != "" {
				if err == nil || !strings.Contains(err.Error(), tt.errText) {
					t.Fatalf("err = %v, want %q", err, tt.errText)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got.Encoding != tt.want || len(got.Problems) != 0 || len(got.Snapshots) != 1 {
				t.Fatalf("parsed = %+v", got)
			}
			sn := got.Snapshots[0]
			if sn.FormOfAddress != "李先生" || sn.RelationshipManager.Name != "李经理" ||
				sn.Indicators["points"].String() != "2000" || !sn.HasCard("credit_gold") ||
				len(sn.RiskFlags) != 1 || sn.RiskFlags[0] != (RiskFlag{RiskAML, "A3"}) {
				t.Fatalf("snapshot = %+v", sn)
			}
		})
	}
}

func TestParseCSVLayout(t *testing.T) {
	s := mustSchemes(t)
	// Tab-separated, padded with blank rows as spreadsheets do.
	data := "customer_id\tmonth\tpoints\n\nC1\t2024-01\t5\n\t\t\nC2\t2024-01\t6\n"
	got, err := s.ParseCSV([]byte(data), "")
	if err != nil {
		t.Fatal(err)
	}
	if got.Rows != 2 || len(got.Snapshots) != 2 || len(got.Problems) != 0 {
		t.Fatalf("parsed = %+v", got)
	}
}
