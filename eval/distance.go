package eval

import (
	"fmt"
	"math"
	"runtime"
	"sync"

	"concierge/face"
)

// maxMatrixFaces bounds the all-pairs matrix (n²/2 float32: 512 MB at this
// size); larger calibration sets should be sampled.
const maxMatrixFaces = 16_384

// distMatrix holds the squared distance of every pair of samples (upper
// triangle, row by row). Every figure of a report reads from it, so each
// distance is computed once however many seeds and rules are measured.
type distMatrix struct {
	n  int
	sq []float32
}

func newDistMatrix(samples []Sample) (*distMatrix, error) {
	n := len(samples)
	if n > maxMatrixFaces {
		return nil, fmt.Errorf("%d faces are more than the %d this evaluation holds in memory; evaluate a subset", n, maxMatrixFaces)
	}
	m := &distMatrix{n: n, sq: make([]float32, n*(n-1)/2)}
	// Rows shrink along the triangle: deal them out round-robin so that
	// every worker gets a similar share.
	workers := min(runtime.GOMAXPROCS(0), max(1, n/64))
	var wg sync.WaitGroup
	for w := range workers {
		wg.Go(func() {
			for i := w; i < n; i += workers {
				row := m.sq[m.offset(i):]
				for j := i + 1; j < n; j++ {
					row[j-i-1] = face.SquaredDistance(&samples[i].Embedding, &samples[j].Embedding)
				}
			}
		})
	}
	wg.Wait()
	return m, nil
}

// offset is where row i (pairs i<j) starts.
func (m *distMatrix) offset(i int) int { return i*m.n - i*(i+1)/2 }

// sqAt is the squared distance between samples i and j.
func (m *distMatrix) sqAt(i, j int) float32 {
	switch {
	case i == j:
		return 0
	case i > j:
		i, j = j, i
	}
	return m.sq[m.offset(i)+j-i-1]
}

// at is the distance between samples i and j.
func (m *distMatrix) at(i, j int) float64 { return math.Sqrt(float64(m.sqAt(i, j))) }
