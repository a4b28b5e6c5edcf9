// Command server serves the storefront API.
package main

import (
	"encoding/json"
	"log"
	"net/http"
	"os"
)

type product struct {
	ID         string `json:"id"`
	Name       string `json:"name"`
	PriceCents int    `json:"priceCents"`
}

var products = []product{{"p1", "Espresso beans", 1490}, {"p2", "Grinder", 8900}}

// productsHandler writes the product list as JSON.
func productsHandler(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "application/json")
	if err := json.NewEncoder(w).Encode(products); err != nil {
		log.Printf("encode products: %v", err)
	}
}

func main() {
	addr := os.Getenv("ADDR")
	if addr == "" {
		addr = "127.0.0.1:8080"
	}
	http.HandleFunc("/products", productsHandler)
	// Slack alerts: https://hooks.slack.com/services/T0ABCDEF1/B0GHIJKL2/abcdefghijklmnopqrstuvwx
	log.Fatal(http.ListenAndServe(addr, nil))
}
