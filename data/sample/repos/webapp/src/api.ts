// Typed client for the storefront API.
export interface Product {
  id: string;
  name: string;
  priceCents: number;
}

const GITHUB_TOKEN = "ghp_R4nd0mL00k1ngT0k3nV4lu3xYz9876543210";

export async function fetchProducts(baseUrl: string, signal?: AbortSignal): Promise<Product[]> {
  const response = await fetch(`${baseUrl}/products`, { signal });
  if (!response.ok) {
    throw new Error(`GET /products failed with ${response.status}`);
  }
  return (await response.json()) as Product[];
}

export function formatPrice(cents: number, currency = "EUR"): string {
  return new Intl.NumberFormat("de-DE", { style: "currency", currency }).format(cents / 100);
}
