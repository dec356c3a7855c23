package httpapi_test

// The vocabulary of the HTTP tests (the GraphQL tests in package graph have the same).

const pw = "correct horse battery"

const loginQ = `mutation($i: LoginInput!) { login(input: $i) { accessToken } }`

func loginVars(email, pw string) map[string]any {
	return map[string]any{"i": map[string]any{"email": email, "password": pw}}
}
